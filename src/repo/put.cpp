// Repository::put: the backup pipeline (docs/repository.md, "Put pipeline").
//
//   reader thread   data ranges of the image in superblocks (16 MiB windows at
//                   absolute offsets; a regular file is mapped, not copied);
//                   holes are passed on, never read
//        | superblocks: bounded queue
//   N workers       FastCDC chunks within the superblock; per chunk: zero
//                   test, keyed id, dedup claim, compress + seal
//        | chunks: bounded queue
//   calling thread  fill packs, collect the extents
//        | finished packs: bounded queue
//   pack writers    name (SHA-256) and write each pack: one for a disk,
//                   location.parallelism() uploads at once for an object store
//
// Chunking restarts at every superblock boundary, which is what lets every
// core chunk: a VM disk's blocks never shift, so boundaries that are
// content-defined within a superblock lose nothing (an insertion in a stream
// still moves only the chunks of its own superblock). Memory is bounded by the
// queues and one pack in the making, whatever the image size.
#include "common/bounded_queue.h"
#include "common/printable.h"
#include "common/time.h"
#include "repo/blob.h"
#include "repo/layout.h"
#include "repo/repository.h"
#include "repo/source.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_set>

namespace kvb::repo {
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kSuperblock = 16 << 20;


// A superblock, or a hole.
struct Superblock {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool hole = false;
  std::shared_ptr<const MappedBytes> mapped;  // a regular file's bytes, mapped
  std::vector<uint8_t> owned;                 // a stream's or device's bytes, read
  std::span<const uint8_t> data() const { return mapped ? mapped->bytes() : std::span<const uint8_t>(owned); }
};

struct ChunkResult {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool hole = false;
  bool zero = false;
  BlobId id{};
  bool is_new = false;  // the one worker that claimed this id first sealed it into `blob`
  EncodedBlob blob;
};

}  // namespace

Result<PutStats> Repository::put(const std::string& name, const fs::path& source_path, const PutOptions& options) {
  KVB_CHECK(check_name(name, "snapshot name"));
  KVB_TRY(auto source, ImageSource::open(source_path));
  return put_source(name, source, source_path == "-" ? "-" : fs::absolute(source_path).lexically_normal().string(), options);
}

Result<PutStats> Repository::put(const std::string& name, ImageSource source, const PutOptions& options) {
  std::string label = source.name();
  return put_source(name, source, label, options);
}

Result<PutStats> Repository::put_source(const std::string& name, ImageSource& source, const std::string& label, const PutOptions& options) {
  KVB_CHECK(check_name(name, "snapshot name"));
  for (const auto& t : options.tags) KVB_CHECK(check_name(t, "tag"));
  if (options.compression_level < 0 || options.compression_level > 19) {
    return Error(Errc::kInvalidArgument, "compression level " + std::to_string(options.compression_level) + " is outside 0..19");
  }
  const unsigned workers = worker_count(options.workers);
  const uint64_t total = source.size();  // 0 for a stream, whose size the reader learns at its end
  BoundedQueue<Superblock> jobs(1);
  BoundedQueue<ChunkResult> results(4 * workers);

  // Reader: the image -> superblocks and holes.
  Status read_status = ok();
  std::thread reader([&] {
    auto hole = [&](uint64_t off, uint64_t len) {
      Superblock b;
      b.offset = off;
      b.length = len;
      b.hole = true;
      return jobs.push(std::move(b));
    };
    Status st = ok();
    if (source.mappable()) {
      st = source.ranges([&](uint64_t off, uint64_t len, bool is_hole) {
        if (is_hole) return hole(off, len);
        for (uint64_t at = off, end = off + len; at < end;) {
          uint64_t next = std::min(end, (at / kSuperblock + 1) * kSuperblock);
          auto mapped = source.map(at, next - at);
          if (!mapped) {
            read_status = mapped.error();
            return false;
          }
          Superblock b;
          b.offset = at;
          b.length = next - at;
          b.mapped = std::move(*mapped);
          if (!jobs.push(std::move(b))) return false;
          at = next;
        }
        return true;
      });
    } else {
      // Pieces of kSuperblock bytes from offset 0: the same superblocks as a file's.
      st = source.scan(kSuperblock, [&](uint64_t off, std::span<const uint8_t> bytes) {
        Superblock b;
        b.offset = off;
        b.length = bytes.size();
        b.owned.assign(bytes.begin(), bytes.end());
        return jobs.push(std::move(b));
      });
    }
    if (!st && read_status) read_status = st;
    jobs.close();
  });

  // Workers: superblock -> chunks -> ids, and the sealed blob of each new one.
  std::mutex claimed_mu;
  std::unordered_set<BlobId, BlobIdHash> claimed;  // new ids some worker is storing in this put
  std::atomic<unsigned> live(workers);
  std::vector<std::thread> pool;
  for (unsigned w = 0; w < workers; ++w) {
    pool.emplace_back([&] {
      bool open = true;
      while (open) {
        auto block = jobs.pop();
        if (!block) break;
        if (block->hole) {
          ChunkResult r;
          r.offset = block->offset;
          r.length = block->length;
          r.hole = true;
          open = results.push(std::move(r));
          continue;
        }
        auto bytes = block->data();
        for (size_t pos = 0; open && pos < bytes.size();) {
          auto data = bytes.subspan(pos, chunker_.cut(bytes.subspan(pos), true));
          ChunkResult r;
          r.offset = block->offset + pos;
          r.length = data.size();
          pos += data.size();
          if (all_zero(data)) {
            r.zero = true;
          } else {
            r.id = blob_id(key_, data);
            bool mine = false;
            if (!index_.find(r.id)) {
              std::lock_guard lk(claimed_mu);
              mine = claimed.insert(r.id).second;
            }
            if (mine) {
              r.is_new = true;
              r.blob = encode_blob(key_, r.id, data, options.compression_level);
            }
          }
          open = results.push(std::move(r));
        }
      }
      if (--live == 0) results.close();
    });
  }

  // Pack writers: finished packs -> named files (SHA-256 of the content), off this thread.
  struct FinishedPack {
    std::vector<uint8_t> bytes;
    std::vector<PackEntry> entries;
  };
  const unsigned uploaders = std::max(1u, loc_->parallelism());
  BoundedQueue<FinishedPack> finished(1);  // with one pack per writer: uploaders + 1 packs in flight
  std::vector<PackListing> new_packs;
  std::mutex packs_mu;
  Status pack_status = ok();
  std::vector<std::thread> pack_writers;
  for (unsigned u = 0; u < uploaders; ++u) {
    pack_writers.emplace_back([&] {
      while (auto p = finished.pop()) {
        {
          std::lock_guard lk(packs_mu);
          if (!pack_status) continue;  // draining after a failure
        }
        // Not durable one by one on a disk: one sync below makes them all durable before the index names them.
        auto pack = write_pack_file(*loc_, p->bytes);
        std::lock_guard lk(packs_mu);
        if (!pack) {
          if (pack_status) pack_status = pack.error();
          jobs.close();  // stop the reader; the workers and this thread's caller drain and stop
          results.close();
          continue;
        }
        new_packs.emplace_back(std::move(*pack), std::move(p->entries));
      }
    });
  }

  // This thread: results -> packs and extents.
  PutStats stats;
  std::vector<Extent> extents;
  PackWriter writer(pack_size_);
  auto seal_pack = [&] {
    if (writer.count() == 0) return;
    auto entries = writer.entries();
    finished.push(FinishedPack{writer.finish(key_), std::move(entries)});
    ++stats.packs;
  };
  uint64_t done = 0;
  while (auto r = results.pop()) {
    ++stats.chunks;
    done += r->length;
    if (r->hole || r->zero) {
      (r->hole ? stats.hole_bytes : stats.zero_bytes) += r->length;
      extents.push_back(Extent{r->offset, r->length, std::nullopt});
    } else {
      extents.push_back(Extent{r->offset, r->length, r->id});
      if (r->is_new) {
        ++stats.new_chunks;
        stats.new_bytes += r->length;
        stats.stored_bytes += r->blob.bytes.size();
        writer.add(r->blob);
        if (writer.size() >= pack_size_) seal_pack();
      }
    }
    if (options.progress) options.progress(done, total);
  }
  reader.join();
  for (auto& t : pool) t.join();
  if (read_status) seal_pack();
  finished.close();
  for (auto& t : pack_writers) t.join();
  if (!pack_status) return pack_status.error();
  if (!read_status) return read_status.error();

  // Durable packs, then the index that names them, then the snapshot that needs it.
  std::string index_file;
  if (!new_packs.empty()) {
    KVB_CHECK(loc_->sync());
    KVB_TRY(index_file, Index::write(*loc_, key_.encryption, new_packs));
    for (const auto& p : new_packs) index_.add(p);
  }
  std::sort(extents.begin(), extents.end(), [](const Extent& a, const Extent& b) { return a.offset < b.offset; });
  Snapshot snap;
  snap.name = name;
  snap.source = label;
  snap.time = format_rfc3339(WallClock::now(), TimePrecision::kNanos);
  snap.size = source.size();
  snap.tags = options.tags;
  for (auto& e : extents) append_extent(snap.extents, e);
  snap.id = "(new)";
  KVB_CHECK(validate_extents(snap));
  stats.bytes = snap.size;
  KVB_TRY(stats.snapshot, save_snapshot(*loc_, key_.encryption, snap));
  // The lock may have been broken (its file deleted, an NFS server restarted)
  // and a prune run meanwhile: a snapshot is only reported once what it needs
  // is known to be there, else it is taken back.
  if (auto st = verify_stored(snap, index_file); !st) {
    (void)loc_->remove_files({"snapshots/" + stats.snapshot});
    Error e = st.error();
    e.message = "put " + name + ": " + e.message + "; the snapshot was not kept (run kvbackup repo check)";
    return e;
  }
  return stats;
}

}  // namespace kvb::repo
