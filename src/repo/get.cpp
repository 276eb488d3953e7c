// Repository::get: restore a snapshot (docs/repository.md, "Restore").
//
// To a file or block device: the distinct blobs are sorted by pack and
// offset and shared among worker threads, each of which reads, authenticates,
// decompresses and verifies a blob; the calling thread writes each at every
// offset that needs it. Zeros are holes in a file (the file is truncated to
// size first) and written out (BLKZEROOUT, else zeros) on a block device. To
// a stream ("-"), extents are written in order, blobs read ahead on the
// workers (read()). A file is written beside the target and renamed over it
// at the end (repo/restore_target.h).
#include "common/bounded_queue.h"
#include "repo/blob.h"
#include "repo/layout.h"
#include "repo/repository.h"
#include "repo/restore_target.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <optional>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
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

// The blobs of one pack that lie close together: read with one request.
struct Run {
  uint32_t pack = 0;
  uint64_t offset = 0, length = 0;
  size_t first = 0, count = 0;  // into the sorted work list
};

// A stored blob, authenticated, decompressed and checked against its id.
Result<std::vector<uint8_t>> open_blob(const Index& index, const MasterKey& key, const BlobId& id, std::span<const uint8_t> stored) {
  const auto* loc = index.find(id);
  auto plain = decode_blob(key, id, stored);
  if (!plain) return Error(plain.error().code, "pack " + index.pack_name(loc->pack) + ": " + plain.error().message);
  return plain;
}

Result<std::vector<uint8_t>> read_blob(const location::Location& where, const Index& index, const MasterKey& key, const BlobId& id) {
  const auto* loc = index.find(id);
  if (!loc) return Error(Errc::kNotFound, "blob " + to_hex(id) + " is in no pack (run kvbackup repo check)");
  auto stored = where.read_range(pack_path(index.pack_name(loc->pack)), loc->offset, loc->length);
  if (!stored) return Error(stored.error().code, "pack " + index.pack_name(loc->pack) + ": " + stored.error().message);
  return open_blob(index, key, id, as_bytes(*stored));
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
  KVB_TRY(auto snap, find_snapshot(*loc_, key_.encryption, snapshot));
  for (const auto& e : snap.extents) {
    if (e.blob && !index_.find(*e.blob)) {
      return Error(Errc::kNotFound, "snapshot " + snap.id + " needs blob " + to_hex(*e.blob) + ", which is in no pack (run kvbackup repo check)");
    }
  }
  KVB_TRY(auto out, RestoreTarget::open(target, options.overwrite));
  const bool stream = out.kind() == RestoreTarget::Kind::kStream;
  const bool block_device = out.kind() == RestoreTarget::Kind::kBlockDevice;
  const int fd = out.fd();
  const std::string& tname = out.name();
  uint64_t done_bytes = 0;

  if (stream) {
    // In order, blobs read ahead on the workers (Repository::read).
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

  // Each distinct blob once, in pack order; the offsets that need it.
  std::map<BlobId, std::vector<uint64_t>> wanted;
  for (const auto& e : snap.extents) {
    if (e.blob) {
      wanted[*e.blob].push_back(e.offset);
    } else {
      if (block_device) KVB_CHECK(zero_device_range(fd, e.offset, e.length, tname));
      done_bytes += e.length;
    }
  }
  std::vector<std::pair<const BlobId*, const std::vector<uint64_t>*>> work;
  work.reserve(wanted.size());
  for (const auto& [id, offsets] : wanted) work.emplace_back(&id, &offsets);
  std::sort(work.begin(), work.end(), [&](const auto& a, const auto& b) {
    const auto *la = index_.find(*a.first), *lb = index_.find(*b.first);
    return std::tie(la->pack, la->offset) < std::tie(lb->pack, lb->offset);
  });

  // Runs: the blobs of a pack that lie close together, read with one request
  // (one pread on a disk, one ranged GET on an object store). A gap of up to
  // 256 KiB is read and dropped rather than paid for with another request.
  constexpr uint64_t kMaxGap = 256 << 10, kMaxRun = 16 << 20;
  std::vector<Run> runs;
  for (size_t i = 0; i < work.size(); ++i) {
    const auto* l = index_.find(*work[i].first);
    if (!runs.empty()) {
      Run& r = runs.back();
      uint64_t end = r.offset + r.length;
      if (r.pack == l->pack && l->offset >= end && l->offset - end <= kMaxGap && l->offset + l->length - r.offset <= kMaxRun) {
        r.length = l->offset + l->length - r.offset;
        ++r.count;
        continue;
      }
    }
    runs.push_back(Run{l->pack, l->offset, l->length, i, 1});
  }

  // Workers read, authenticate and decompress; this thread writes (one
  // writer: ext4 serializes writers of a file on its inode lock anyway).
  struct Decoded {
    std::vector<uint8_t> plain;
    const std::vector<uint64_t>* offsets;
  };
  BoundedQueue<Decoded> decoded(8);
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mu;
  Status first_error = ok();
  auto fail = [&](const Status& st) {
    std::lock_guard lk(error_mu);
    if (first_error) first_error = st;
    failed = true;
  };
  // Reads wait on the network for an object store: more readers than cores.
  const unsigned workers = std::max(worker_count(options.workers), loc_->parallelism());
  std::atomic<unsigned> live(workers);
  std::vector<std::thread> pool;
  for (unsigned w = 0; w < workers; ++w) {
    pool.emplace_back([&] {
      for (size_t n; !failed && (n = next.fetch_add(1)) < runs.size();) {
        const Run& run = runs[n];
        auto bytes = loc_->read_range(pack_path(index_.pack_name(run.pack)), run.offset, run.length);
        for (size_t i = run.first; !failed && i < run.first + run.count; ++i) {
          const auto* l = index_.find(*work[i].first);
          Result<std::vector<uint8_t>> plain = bytes ? open_blob(index_, key_, *work[i].first, as_bytes(*bytes).subspan(l->offset - run.offset, l->length))
                                                     : Result<std::vector<uint8_t>>(Error(bytes.error().code, "pack " + index_.pack_name(run.pack) +
                                                                                                                   ": " + bytes.error().message));
          if (!plain) {
            fail(unreadable(snap, plain.error(), l->plaintext_size, *work[i].second));
            break;
          }
          if (!decoded.push(Decoded{std::move(*plain), work[i].second})) break;
        }
      }
      if (--live == 0) decoded.close();
    });
  }
  uint64_t written = done_bytes;
  while (auto d = decoded.pop()) {
    if (failed) continue;  // draining
    for (uint64_t off : *d->offsets) {
      auto st = write_all(fd, d->plain.data(), d->plain.size(), static_cast<int64_t>(off), tname);
      if (!st) {
        fail(st);
        decoded.close();
        break;
      }
      written += d->plain.size();
    }
    if (options.progress) options.progress(written, snap.size);
  }
  for (auto& t : pool) t.join();
  if (!first_error) return first_error;
  return out.commit();
}

}  // namespace kvb::repo

namespace kvb::repo {

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
  // A fixed pool reads, authenticates and decompresses the blobs in image
  // order, at most `window` ahead of the sink; this thread hands them to the
  // sink in order. (A thread per blob, as before, cost this thread — the
  // sink's — a thread start per chunk.)
  const unsigned workers = options.workers == 0 ? 4 : options.workers;
  const size_t window = 2 * static_cast<size_t>(workers);
  std::vector<const Extent*> blobs;
  for (const auto& e : snap.extents) {
    if (e.blob) blobs.push_back(&e);
  }
  std::mutex mu;
  std::condition_variable fetched, consumed_cv;
  std::vector<std::optional<Result<std::vector<uint8_t>>>> ring(window);
  size_t next_fetch = 0, consumed = 0;
  bool stopping = false;
  std::vector<std::jthread> pool;
  for (unsigned w = 0; w < workers && w < blobs.size(); ++w) {
    pool.emplace_back([&] {
      for (;;) {
        size_t k;
        {
          std::unique_lock lk(mu);
          consumed_cv.wait(lk, [&] { return stopping || next_fetch >= blobs.size() || next_fetch < consumed + window; });
          if (stopping || next_fetch >= blobs.size()) return;
          k = next_fetch++;
        }
        auto plain = read_blob(*loc_, index_, key_, *blobs[k]->blob);
        std::lock_guard lk(mu);
        ring[k % window] = std::move(plain);
        fetched.notify_one();  // only the sink waits on it
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
  size_t k = 0;  // the next blob the sink needs
  for (const auto& e : snap.extents) {
    if (!e.blob) {
      uint64_t left = e.length;
      while (left > 0) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(left, zeros.size()));
        KVB_CHECK(sink(std::span<const uint8_t>(zeros.data(), n)));
        left -= n;
      }
    } else {
      Result<std::vector<uint8_t>> plain = std::vector<uint8_t>{};
      {
        std::unique_lock lk(mu);
        fetched.wait(lk, [&] { return ring[k % window].has_value(); });
        plain = std::move(*ring[k % window]);
        ring[k % window].reset();
        consumed = ++k;
      }
      // One slot freed: one worker may fetch (waking all four cost a futex storm
      // per blob). Workers left waiting at the end are woken by stop_pool.
      consumed_cv.notify_one();
      if (!plain) return unreadable(snap, plain.error(), e.length, {e.offset});
      if (plain->size() != e.length) {
        return unreadable(snap, Error(Errc::kDamaged, "blob holds " + std::to_string(plain->size()) + " bytes, the extent " +
                                                          std::to_string(e.length)),
                          e.length, {e.offset});
      }
      KVB_CHECK(sink(std::span<const uint8_t>(plain->data(), plain->size())));
    }
    done += e.length;
    if (options.progress) options.progress(done, snap.size);
  }
  return ok();
}

}  // namespace kvb::repo
