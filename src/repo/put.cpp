// Repository::put: the backup pipeline (docs/repository.md, "Put pipeline").
//
//   reader thread   read data ranges (holes are skipped), cut chunks (FastCDC)
//        | jobs: bounded queue
//   N workers       zero test, keyed id, dedup claim, compress + seal
//        | results: bounded queue
//   calling thread  fill packs and write them, collect the extents
//
// Memory is bounded by the queues (a few chunks of at most 1 MiB per slot)
// and one pack in the making, whatever the image size.
#include "common/atomic_file.h"
#include "common/bounded_queue.h"
#include "common/time.h"
#include "repo/blob.h"
#include "repo/layout.h"
#include "repo/repository.h"
#include "repo/source.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>

namespace kvb::repo {
namespace fs = std::filesystem;

namespace {

constexpr size_t kReadPiece = 4 << 20;

struct ChunkJob {
  uint64_t offset = 0;
  uint64_t length = 0;
  std::vector<uint8_t> data;  // empty: a hole of `length` bytes
};

struct ChunkResult {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool hole = false;
  bool zero = false;
  BlobId id{};
  std::optional<EncodedBlob> blob;  // set for the one worker that stored this id first
};

unsigned worker_count(unsigned asked) {
  if (asked > 0) return asked;
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

Result<PutStats> Repository::put(const std::string& name, const fs::path& source_path, const PutOptions& options) {
  if (name.empty()) return Error(Errc::kInvalidArgument, "a snapshot needs a name");
  KVB_TRY(auto source, ImageSource::open(source_path));
  const unsigned workers = worker_count(options.workers);
  BoundedQueue<ChunkJob> jobs(2 * workers + 2);
  BoundedQueue<ChunkResult> results(2 * workers + 2);

  // Reader: data ranges -> chunks.
  Status read_status = ok();
  std::thread reader([&] {
    std::vector<uint8_t> pending;  // bytes of the current data range not yet cut
    uint64_t pending_at = 0;
    const size_t max = chunker_.params().max;
    auto st = source.scan(
        kReadPiece, [&](uint64_t off, uint64_t len) { return jobs.push(ChunkJob{off, len, {}}); },
        [&](uint64_t off, std::span<const uint8_t> bytes, bool last) {
          if (pending.empty()) pending_at = off;
          pending.insert(pending.end(), bytes.begin(), bytes.end());
          size_t used = 0;
          while (pending.size() - used >= (last ? 1 : max)) {
            std::span<const uint8_t> rest(pending.data() + used, pending.size() - used);
            size_t len = chunker_.cut(rest, last);
            if (len == 0) len = rest.size();
            if (!jobs.push(ChunkJob{pending_at + used, len, std::vector<uint8_t>(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(len))})) {
              return false;
            }
            used += len;
          }
          pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(used));
          pending_at += used;
          return true;
        });
    if (!st) read_status = st;
    jobs.close();
  });

  // Workers: chunk -> id, and the sealed blob when it is new.
  std::mutex claimed_mu;
  std::unordered_set<BlobId, BlobIdHash> claimed;  // new ids some worker is storing in this put
  std::atomic<unsigned> live(workers);
  std::vector<std::thread> pool;
  for (unsigned w = 0; w < workers; ++w) {
    pool.emplace_back([&] {
      while (auto job = jobs.pop()) {
        ChunkResult r;
        r.offset = job->offset;
        r.length = job->length;
        if (job->data.empty()) {
          r.hole = true;
        } else if (all_zero(job->data)) {
          r.zero = true;
        } else {
          r.id = blob_id(key_, job->data);
          bool mine = false;
          if (!index_.find(r.id)) {
            std::lock_guard lk(claimed_mu);
            mine = claimed.insert(r.id).second;
          }
          if (mine) r.blob = encode_blob(key_, r.id, job->data);
        }
        if (!results.push(std::move(r))) break;
      }
      if (--live == 0) results.close();
    });
  }

  // This thread: results -> packs and extents.
  PutStats stats;
  std::vector<Extent> extents;
  std::vector<PackListing> new_packs;
  PackWriter writer;
  Status write_status = ok();
  auto flush = [&]() -> Status {
    if (writer.count() == 0) return ok();
    auto entries = writer.entries();
    auto bytes = writer.finish(key_);
    std::string pack = pack_id(bytes);
    auto path = pack_path(dir_, pack);
    KVB_CHECK(make_directories(path.parent_path()));
    // Not fsynced one by one: one syncfs() below makes them all durable before the index names them.
    KVB_CHECK(write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), 0600, false));
    new_packs.emplace_back(pack, std::move(entries));
    ++stats.packs;
    return ok();
  };
  uint64_t done = 0;
  while (auto r = results.pop()) {
    if (!write_status) continue;  // draining after a failure
    ++stats.chunks;
    done += r->length;
    if (r->hole || r->zero) {
      (r->hole ? stats.hole_bytes : stats.zero_bytes) += r->length;
      extents.push_back(Extent{r->offset, r->length, std::nullopt});
    } else {
      extents.push_back(Extent{r->offset, r->length, r->id});
      if (r->blob) {
        ++stats.new_chunks;
        stats.new_bytes += r->length;
        stats.stored_bytes += r->blob->bytes.size();
        writer.add(*r->blob);
        if (writer.size() >= pack_size_) write_status = flush();
        if (!write_status) {
          jobs.close();  // stop the reader; the workers drain and stop
          results.close();
        }
      }
    }
    if (options.progress) options.progress(done, source.size());
  }
  reader.join();
  for (auto& t : pool) t.join();
  if (!write_status) return write_status.error();
  if (!read_status) return read_status.error();
  KVB_CHECK(flush());

  // Durable packs, then the index that names them, then the snapshot that needs it.
  if (!new_packs.empty()) {
    KVB_CHECK(sync_filesystem(dir_ / "data"));
    KVB_TRY(auto file, Index::write(dir_, key_.encryption, new_packs));
    (void)file;
    for (const auto& p : new_packs) index_.add(p);
  }
  std::sort(extents.begin(), extents.end(), [](const Extent& a, const Extent& b) { return a.offset < b.offset; });
  Snapshot snap;
  snap.name = name;
  snap.source = source_path == "-" ? "-" : fs::absolute(source_path).lexically_normal().string();
  snap.time = format_rfc3339(WallClock::now(), TimePrecision::kNanos);
  snap.size = source.size();
  snap.tags = options.tags;
  for (auto& e : extents) append_extent(snap.extents, e);
  snap.id = "(new)";
  KVB_CHECK(validate_extents(snap));
  stats.bytes = snap.size;
  KVB_TRY(stats.snapshot, save_snapshot(dir_, key_.encryption, snap));
  return stats;
}

}  // namespace kvb::repo
