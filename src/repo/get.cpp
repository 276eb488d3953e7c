// Repository::get and Repository::read: restore a snapshot (docs/repository.md,
// "Restore").
//
// Both go through read_in_order: the image in order, its blobs read in runs
// (the blobs of consecutive extents that lie close together in one pack: one
// pread on a disk, one ranged GET on an object store), authenticated and
// decompressed ahead by a pool of workers, checked region by region against
// the snapshot's image map (repo/region_check.h) and handed to the caller's
// thread, which writes them: at their offsets into a file (zeros are holes:
// the file is truncated to size first) or a block device (zeros written:
// BLKZEROOUT, else zeros), or in order to a stream or a consumer. A file is
// written beside the target and renamed over it at the end
// (repo/restore_target.h).
#include "common/writeback.h"
#include "repo/blob.h"
#include "repo/layout.h"
#include "repo/region_check.h"
#include "repo/repository.h"
#include "repo/restore_target.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cerrno>
#include <cstring>
#include <optional>
#include <mutex>
#include <thread>

namespace kvb::repo {
namespace fs = std::filesystem;

namespace {

Status write_all(int fd, const uint8_t* data, size_t n, int64_t offset, const std::string& target) {
  while (n > 0) {
    ssize_t w = offset < 0 ? ::write(fd, data, n) : ::pwrite(fd, data, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return Error(Errc::kIo, "cannot write " + target + ": " + std::strerror(errno));
    data += w;
    n -= static_cast<size_t>(w);
    if (offset >= 0) offset += w;
  }
  return ok();
}

// 1 MiB of zeros: what a zero extent is written or streamed from.
const std::vector<uint8_t>& zero_buffer() {
  static const std::vector<uint8_t> zeros(1 << 20);
  return zeros;
}

// A zero extent of a block device: BLKZEROOUT, else written out.
Status zero_device_range(int fd, uint64_t offset, uint64_t length, const std::string& target) {
  uint64_t range[2] = {offset, length};
  if (::ioctl(fd, BLKZEROOUT, range) == 0) return ok();
  const auto& zeros = zero_buffer();
  while (length > 0) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(length, zeros.size()));
    KVB_CHECK(write_all(fd, zeros.data(), n, static_cast<int64_t>(offset), target));
    offset += n;
    length -= n;
  }
  return ok();
}

// Consecutive data extents whose blobs lie close together in one pack: read
// with one request. A gap of up to 256 KiB is read and dropped rather than
// paid for with another request; a run stops at 8 MiB stored or 16 MiB of
// plaintext, which bounds what the read-ahead holds.
struct Run {
  uint32_t pack = 0;
  uint64_t offset = 0, length = 0, plaintext = 0;
  size_t first = 0, count = 0;  // into the data extents
};

std::vector<Run> plan_runs(const Index& index, const std::vector<const Extent*>& blobs) {
  constexpr uint64_t kMaxGap = 256 << 10, kMaxStored = 8 << 20, kMaxPlain = 16 << 20;
  std::vector<Run> runs;
  for (size_t i = 0; i < blobs.size(); ++i) {
    const auto* l = index.find(*blobs[i]->blob);
    if (!runs.empty()) {
      Run& r = runs.back();
      const uint64_t end = r.offset + r.length;
      if (r.pack == l->pack && l->offset >= end && l->offset - end <= kMaxGap && l->offset + l->length - r.offset <= kMaxStored &&
          r.plaintext + l->plaintext_size <= kMaxPlain) {
        r.length = l->offset + l->length - r.offset;
        r.plaintext += l->plaintext_size;
        ++r.count;
        continue;
      }
    }
    runs.push_back(Run{l->pack, l->offset, l->length, l->plaintext_size, i, 1});
  }
  return runs;
}

// A blob that cannot be read: which snapshot and which bytes of its image are
// lost, then why. Damage and a missing pack are data errors (exit 1), not bad input.
Error unreadable(const Snapshot& snap, const Error& why, uint64_t length, const std::vector<uint64_t>& offsets) {
  std::string ranges;
  for (size_t i = 0; i < offsets.size() && i < 3; ++i) {
    ranges += (i ? ", " : "") + std::to_string(offsets[i]) + ".." + std::to_string(offsets[i] + length);
  }
  if (offsets.size() > 3) ranges += " and " + std::to_string(offsets.size() - 3) + " more ranges";
  Error e = why;
  if (e.code != Errc::kIo && e.code != Errc::kNotFound) e.code = Errc::kDamaged;
  e.message = "snapshot " + snap.id + " (" + snap.name + "): bytes " + ranges + " of the image (" + std::to_string(length) +
              " bytes each) cannot be restored: " + why.message + " (run kvbackup repo check --read-data)";
  return e;
}

}  // namespace

Status Repository::get(const std::string& snapshot, const fs::path& target, const GetOptions& options) {
  KVB_TRY(auto snap, find(snapshot));
  KVB_TRY(auto out, RestoreTarget::open(target, options.overwrite));
  const bool block_device = out.kind() == RestoreTarget::Kind::kBlockDevice;
  const int fd = out.fd();
  const std::string& tname = out.name();
  if (out.kind() == RestoreTarget::Kind::kStream) {
    KVB_CHECK(read(snap, [&](std::span<const uint8_t> bytes) { return write_all(fd, bytes.data(), bytes.size(), -1, tname); }, options));
    return out.commit();
  }
  if (block_device) {
    uint64_t dev_size = 0;
    if (::ioctl(fd, BLKGETSIZE64, &dev_size) != 0 || dev_size < snap.size) {
      return Error(Errc::kInvalidArgument, "block device " + tname + " holds " + std::to_string(dev_size) + " bytes; the snapshot needs " +
                                               std::to_string(snap.size));
    }
  } else if (::ftruncate(fd, static_cast<off_t>(snap.size)) != 0) {
    return Error(Errc::kIo, "cannot size " + tname + ": " + std::strerror(errno));
  }
  // Reads wait on the network for an object store: more readers than cores.
  const unsigned workers = std::max(worker_count(options.workers), loc_->parallelism());
  // Writeback starts behind the writes, so the disk writes while blobs are
  // decoded and the final fsync waits for the tail only: it took as long as
  // dd's whole write of a 2 GiB image when all of it waited for the end.
  WritebackBehind writeback(fd);
  auto write_at = [&](uint64_t offset, std::span<const uint8_t> bytes) -> Status {
    KVB_CHECK(write_all(fd, bytes.data(), bytes.size(), static_cast<int64_t>(offset), tname));
    writeback.wrote_up_to(offset + bytes.size());
    return ok();
  };
  KVB_CHECK(read_in_order(
      snap, workers, write_at,
      [&](uint64_t offset, uint64_t length) { return block_device ? zero_device_range(fd, offset, length, tname) : ok(); }, options.progress));
  return out.commit();
}

Result<Snapshot> Repository::find(const std::string& snapshot) {
  KVB_TRY(auto snap, find_snapshot(*loc_, key_.encryption, snapshot));
  for (const auto& e : snap.extents) {
    if (e.blob && !index_.find(*e.blob)) {
      return Error(Errc::kNotFound, "snapshot " + snap.id + " needs blob " + to_hex(*e.blob) + ", which is in no pack (run kvbackup repo check)");
    }
  }
  return snap;
}

Status Repository::read(const Snapshot& snap, const Sink& sink, const GetOptions& options) {
  const auto& zeros = zero_buffer();
  return read_in_order(
      snap, options.workers == 0 ? 4 : options.workers, [&](uint64_t, std::span<const uint8_t> bytes) { return sink(bytes); },
      [&](uint64_t, uint64_t length) -> Status {
        for (uint64_t left = length; left > 0;) {
          const size_t n = static_cast<size_t>(std::min<uint64_t>(left, zeros.size()));
          KVB_CHECK(sink(std::span<const uint8_t>(zeros.data(), n)));
          left -= n;
        }
        return ok();
      },
      options.progress);
}

Status Repository::read_in_order(const Snapshot& snap, unsigned workers, const ExtentData& data, const ExtentZeros& zeros,
                                 const Progress& progress) {
  // With a map the restored bytes are checked against it, region by region;
  // without one, each blob against its id (repo/blob.h). The tag is always checked.
  RegionCheck check(snap, map_seed(key_), data, zeros);
  const IdCheck id_check = check.checks() ? IdCheck::kSkip : IdCheck::kRecompute;
  std::vector<const Extent*> blobs;
  for (const auto& e : snap.extents) {
    if (!e.blob) continue;
    if (!index_.find(*e.blob)) {
      return Error(Errc::kNotFound, "snapshot " + snap.id + " needs blob " + to_hex(*e.blob) + ", which is in no pack (run kvbackup repo check)");
    }
    blobs.push_back(&e);
  }
  const std::vector<Run> runs = plan_runs(index_, blobs);

  // A fixed pool reads and decodes runs in image order, at most `window` runs
  // ahead of this thread, which checks and hands them on in order. A run's
  // blobs, in order; an error ends the list.
  using Decoded = std::vector<Result<std::vector<uint8_t>>>;
  // In order means one slow request holds back the runs behind it: twice the
  // workers plus four (8 runs on two cores, 12 for an object store's four
  // readers: 1.9-2.1 s against 2.2-3.0 s with workers + 2 for a 1 GiB get
  // from radosgw), and at most 96 MiB of their plaintext fetched and not yet
  // handed on (the run the consumer waits for is always fetched).
  const size_t window = 2 * static_cast<size_t>(workers) + 4;
  constexpr uint64_t kHeldBudget = 96 << 20;
  std::mutex mu;
  std::condition_variable fetched, consumed_cv;
  std::vector<std::optional<Decoded>> ring(window);
  size_t next_fetch = 0, consumed = 0;
  uint64_t held = 0;  // plaintext of the runs taken and not yet replaced by the consumer
  bool stopping = false;
  std::vector<std::jthread> pool;
  for (unsigned w = 0; w < workers && w < runs.size(); ++w) {
    pool.emplace_back([&] {
      for (;;) {
        size_t k;
        {
          std::unique_lock lk(mu);
          consumed_cv.wait(lk, [&] {
            return stopping || next_fetch >= runs.size() ||
                   (next_fetch < consumed + window && (next_fetch == consumed || held + runs[next_fetch].plaintext <= kHeldBudget));
          });
          if (stopping || next_fetch >= runs.size()) return;
          k = next_fetch++;
          held += runs[k].plaintext;
        }
        // The run `window` places further is fetched after the ones held now:
        // ask for it to be read ahead (a cold repository on a local disk).
        if (k == 0) {
          for (size_t j = 1; j < window && j < runs.size(); ++j) {
            loc_->prefetch(pack_path(index_.pack_name(runs[j].pack)), runs[j].offset, runs[j].length);
          }
        }
        if (k + window < runs.size()) {
          const Run& later = runs[k + window];
          loc_->prefetch(pack_path(index_.pack_name(later.pack)), later.offset, later.length);
        }
        const Run& run = runs[k];
        const std::string& pack = index_.pack_name(run.pack);
        Decoded out;
        auto stored = loc_->read_range(pack_path(pack), run.offset, run.length);
        if (!stored) {
          out.emplace_back(Error(stored.error().code, "pack " + pack + ": " + stored.error().message));
        } else {
          for (size_t i = run.first; i < run.first + run.count; ++i) {
            const auto* l = index_.find(*blobs[i]->blob);
            auto plain = decode_blob(key_, *blobs[i]->blob, as_bytes(*stored).subspan(l->offset - run.offset, l->length), id_check);
            if (!plain) {
              out.emplace_back(Error(plain.error().code, "pack " + pack + ": " + plain.error().message));
              break;
            }
            out.emplace_back(std::move(plain));
          }
        }
        std::lock_guard lk(mu);
        ring[k % window] = std::move(out);
        fetched.notify_one();  // only the consumer waits on it
      }
    });
  }
  // Every worker is stopped and joined before returning, whatever returns.
  struct Stop {
    std::mutex& mu;
    bool& stopping;
    std::condition_variable& cv;
    std::vector<std::jthread>& pool;
    ~Stop() {
      {
        std::lock_guard lk(mu);
        stopping = true;
      }
      cv.notify_all();
      pool.clear();
    }
  } stop_pool{mu, stopping, consumed_cv, pool};

  uint64_t done = 0;
  Decoded current;
  size_t in_current = 0;  // the next blob of `current`
  for (const auto& e : snap.extents) {
    if (!e.blob) {
      KVB_CHECK(check.zeros(e.length));
    } else {
      if (in_current == current.size()) {
        {
          std::unique_lock lk(mu);
          fetched.wait(lk, [&] { return ring[consumed % window].has_value(); });
          if (consumed > 0) held -= runs[consumed - 1].plaintext;  // `current` is replaced
          current = std::move(*ring[consumed % window]);
          ring[consumed % window].reset();
          ++consumed;
        }
        // One slot freed: one worker may fetch (waking all cost a futex storm
        // per run). Workers left waiting at the end are woken by stop_pool.
        consumed_cv.notify_one();
        in_current = 0;
      }
      auto& plain = current[in_current++];
      if (!plain) return unreadable(snap, plain.error(), e.length, {e.offset});
      if (plain->size() != e.length) {
        return unreadable(snap, Error(Errc::kDamaged, "blob holds " + std::to_string(plain->size()) + " bytes, the extent " +
                                                          std::to_string(e.length)),
                          e.length, {e.offset});
      }
      KVB_CHECK(check.data(std::move(*plain)));
    }
    done += e.length;
    if (progress) progress(done, snap.size);
  }
  return check.finish();
}

}  // namespace kvb::repo
