// Repository::put: the backup pipeline (docs/repository.md, "Put pipeline").
//
//   reader thread   the image in windows (16 MiB at absolute offsets) of
//                   data ranges and holes; a regular file is mapped, not
//                   copied; holes are never read
//        | windows: bounded queue
//   N workers       fingerprint the window's regions (the image map); cut
//                   FastCDC chunks, or reuse the parent's where the regions
//                   are unchanged (repo/put_window.h); per new cut chunk:
//                   zero test, keyed id, dedup claim, compress + seal
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
#include "repo/put_window.h"
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

using put_detail::ChunkOut;
using put_detail::kWindow;
using put_detail::Piece;
using put_detail::Window;
using put_detail::WindowReport;

namespace {

// A window's chunk, or (prints set) its report once every chunk is out.
struct WorkerResult {
  ChunkOut chunk;
  std::unique_ptr<WindowReport> report;
};

}  // namespace

Result<Snapshot> Repository::find_parent(const std::string& name, std::string& why_not) const {
  auto names = loc_->list("snapshots");
  if (!names) {
    why_not = "the snapshots cannot be listed (" + names.error().message + "): a full put";
    return names.error();
  }
  // The newest snapshot of this name; one that cannot be read is passed over (check reports it).
  std::optional<Snapshot> newest;
  size_t unreadable = 0;
  for (const auto& id : *names) {
    auto s = load_snapshot(*loc_, key_.encryption, id, false);
    if (!s) {
      ++unreadable;
      continue;
    }
    if (s->name != name) continue;
    if (!newest || s->time > newest->time || (s->time == newest->time && s->id > newest->id)) newest = std::move(*s);
  }
  const std::string skipped = unreadable ? " (" + std::to_string(unreadable) + " unreadable snapshots passed over: run kvbackup repo check)" : "";
  if (!newest) {
    why_not = "no earlier snapshot named " + printable(name) + skipped + ": a full put";
    return Error(Errc::kNotFound, why_not);
  }
  auto full = load_snapshot(*loc_, key_.encryption, newest->id, true);
  if (!full) {
    why_not = "the previous snapshot " + newest->id + " cannot be read (" + full.error().message + "): a full put";
    return full.error();
  }
  if (!full->map) {
    why_not = full->map_problem.empty()
                  ? "the previous snapshot " + full->id + " has no image map (written by an older kvbackup): a full put"
                  : "the previous snapshot " + full->id + " has an unusable image map (" + full->map_problem + "): a full put";
    return Error(Errc::kNotFound, why_not);
  }
  return std::move(*full);
}

std::vector<ByteRange> region_ranges(std::vector<ByteRange> ranges, uint64_t size) {
  std::sort(ranges.begin(), ranges.end(), [](const ByteRange& a, const ByteRange& b) { return a.offset < b.offset; });
  std::vector<ByteRange> out;
  for (const auto& r : ranges) {
    if (r.length == 0 || r.offset >= size) continue;
    const uint64_t start = r.offset / kRegionSize * kRegionSize;
    const uint64_t end = std::min(size, (std::min(size, r.offset + r.length) + kRegionSize - 1) / kRegionSize * kRegionSize);
    if (!out.empty() && start <= out.back().offset + out.back().length) {
      out.back().length = std::max(out.back().offset + out.back().length, end) - out.back().offset;
    } else {
      out.push_back(ByteRange{start, end - start});
    }
  }
  return out;
}

namespace {

// The window of an image of `size` bytes that starts at `off`.
Window window_at(uint64_t off, uint64_t size) {
  Window w;
  w.offset = off;
  w.length = std::min<uint64_t>(kWindow, size - off);
  return w;
}

// Windows of the whole image for a put with known changes: the changed
// regions read from the stream in order, the others left to the parent
// (put_window.h).
Status feed_known_changes(ImageSource& source, const KnownChanges& known, BoundedQueue<Window>& jobs) {
  size_t c = 0;
  for (uint64_t off = 0; off < known.size; off += kWindow) {
    Window w = window_at(off, known.size);
    w.owned = std::make_shared<std::string>(w.length, '\0');
    auto buf = std::span<uint8_t>(reinterpret_cast<uint8_t*>(w.owned->data()), w.owned->size());
    w.pieces.push_back(Piece{off, w.length, false, 0, buf, nullptr});
    w.known.assign((w.length + kRegionSize - 1) / kRegionSize, true);
    for (uint64_t r = off; r < off + w.length; r += kRegionSize) {
      while (c < known.changed.size() && known.changed[c].offset + known.changed[c].length <= r) ++c;
      if (c == known.changed.size() || known.changed[c].offset > r) continue;
      const uint64_t len = std::min(kRegionSize, known.size - r);
      KVB_CHECK(source.read_exact(buf.subspan(r - off, len), r));
      w.known[(r - off) / kRegionSize] = false;
    }
    if (!jobs.push(std::move(w))) return ok();  // the put stopped: its own error says why
  }
  return source.finish(known.size);
}

// Windows of the whole image for a put of allocated ranges: those read from
// the stream in order into one buffer per window, the rest holes never read.
Status feed_allocated(ImageSource& source, const AllocatedRanges& alloc, BoundedQueue<Window>& jobs) {
  size_t a = 0;
  for (uint64_t off = 0; off < alloc.size; off += kWindow) {
    Window w = window_at(off, alloc.size);
    const uint64_t end = off + w.length;
    uint64_t data = 0;
    for (size_t i = a; i < alloc.data.size() && alloc.data[i].offset < end; ++i) {
      data += std::min(end, alloc.data[i].offset + alloc.data[i].length) - std::max(off, alloc.data[i].offset);
    }
    w.owned = std::make_shared<std::string>(data, '\0');
    uint8_t* buf = reinterpret_cast<uint8_t*>(w.owned->data());
    for (uint64_t at = off; at < end;) {
      while (a < alloc.data.size() && alloc.data[a].offset + alloc.data[a].length <= at) ++a;
      const bool inside = a < alloc.data.size() && alloc.data[a].offset <= at;
      const uint64_t next = inside ? std::min(end, alloc.data[a].offset + alloc.data[a].length)
                                   : std::min(end, a < alloc.data.size() ? alloc.data[a].offset : end);
      Piece piece{at, next - at, !inside, 0, {}, nullptr};
      if (inside) {
        auto bytes = std::span<uint8_t>(buf, next - at);
        KVB_CHECK(source.read_exact(bytes, at));
        piece.data = bytes;
        buf += next - at;
      }
      w.pieces.push_back(std::move(piece));
      at = next;
    }
    if (!jobs.push(std::move(w))) return ok();
  }
  return source.finish(alloc.size);
}

Status check_allocated(const AllocatedRanges& a) {
  uint64_t at = 0;
  for (const auto& r : a.data) {
    if (r.length == 0 || r.offset < at || r.offset + r.length > a.size) {
      return Error(Errc::kInvalidArgument, "allocated range [" + std::to_string(r.offset) + ", +" + std::to_string(r.length) +
                                               ") is empty, out of order or outside the " + std::to_string(a.size) + "-byte image");
    }
    at = r.offset + r.length;
  }
  return ok();
}

}  // namespace

Result<Snapshot> Repository::known_changes_parent(const KnownChanges& known) const {
  auto p = load_snapshot(*loc_, key_.encryption, known.parent, true);
  if (!p) return Error(p.error().code, "the snapshot the changes are relative to, " + known.parent + ", cannot be read: " + p.error().message);
  if (!p->map) return Error(Errc::kInvalidArgument, "the snapshot the changes are relative to, " + known.parent + ", has no usable image map");
  if (p->size != known.size) {
    return Error(Errc::kInvalidArgument, "the image is " + std::to_string(known.size) + " bytes and the snapshot the changes are relative to, " +
                                             known.parent + ", " + std::to_string(p->size) + ": changes cannot describe a resize");
  }
  uint64_t at = 0;
  for (const auto& r : known.changed) {
    const bool aligned = r.offset % kRegionSize == 0 && (r.length % kRegionSize == 0 || r.offset + r.length == known.size);
    if (r.length == 0 || r.offset < at || r.offset + r.length > known.size || !aligned) {
      return Error(Errc::kInvalidArgument, "changed range [" + std::to_string(r.offset) + ", +" + std::to_string(r.length) +
                                               ") is not whole map regions, in order and inside the image");
    }
    at = r.offset + r.length;
  }
  return std::move(*p);
}

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
  // 0 for a stream, whose size the reader learns at its end.
  const uint64_t total = options.allocated ? options.allocated->size : source.size();
  PutStats stats;

  // The parent: the previous snapshot of this name, with its image map; with
  // known changes, the snapshot they are relative to.
  std::optional<Snapshot> parent;
  const KnownChanges* known = options.known_changes ? &*options.known_changes : nullptr;
  if (known && options.allocated) return Error(Errc::kInvalidArgument, "a put takes known changes or allocated ranges, not both");
  if (options.allocated) KVB_CHECK(check_allocated(*options.allocated));
  if (known) {
    KVB_TRY(auto p, known_changes_parent(*known));
    parent = std::move(p);
    stats.parent = parent->id;
  } else if (options.parent == ParentMode::kNone) {
    stats.full_reason = "--no-parent: every byte read, chunked and hashed";
  } else {
    auto p = find_parent(name, stats.full_reason);
    if (p) {
      parent = std::move(*p);
      stats.parent = parent->id;
      if (options.parent == ParentMode::kRehash) {
        stats.full_reason = "--rehash: every byte read, chunked and hashed, and compared with parent " + parent->id;
      }
    }
  }

  put_detail::PutContext ctx{key_, chunker_, index_, *loc_, 0, {}, nullptr, false, false, kDefaultCompressionLevel, nullptr, nullptr};
  ctx.seed = map_seed(key_);
  ctx.hole_region = put_detail::hole_region_print(ctx.seed);
  ctx.parent = parent ? &*parent : nullptr;
  ctx.reuse = known || options.parent == ParentMode::kAuto;
  ctx.verify = !known && options.parent == ParentMode::kRehash;
  ctx.level = options.compression_level;
  std::mutex claimed_mu;
  std::unordered_set<BlobId, BlobIdHash> claimed;  // new ids some worker is storing in this put
  ctx.claimed_mu = &claimed_mu;
  ctx.claimed = &claimed;

  BoundedQueue<Window> jobs(1);
  BoundedQueue<WorkerResult> results(4 * workers);

  // Reader: the image -> windows of data ranges and holes.
  Status read_status = ok();
  std::thread reader([&] {
    Status st = ok();
    if (known) {
      st = feed_known_changes(source, *known, jobs);
    } else if (options.allocated) {
      st = feed_allocated(source, *options.allocated, jobs);
    } else if (source.mappable()) {
      Window w;
      auto flush = [&] {
        if (w.pieces.empty()) return true;
        bool pushed = jobs.push(std::move(w));
        w = Window{};
        return pushed;
      };
      st = source.ranges([&](uint64_t off, uint64_t len, bool is_hole) {
        for (uint64_t at = off, end = off + len; at < end;) {
          const uint64_t window = at / kWindow * kWindow;
          const uint64_t next = std::min(end, window + kWindow);
          if (!w.pieces.empty() && w.offset != window && !flush()) return false;
          if (w.pieces.empty()) w.offset = window;
          Piece piece;
          piece.offset = at;
          piece.length = next - at;
          piece.hole = is_hole;
          if (!is_hole) {
            auto mapped = source.map(at, next - at);
            if (!mapped) {
              read_status = mapped.error();
              return false;
            }
            piece.data = (*mapped)->bytes();
            piece.mapped = std::move(*mapped);
          }
          w.pieces.push_back(std::move(piece));
          w.length = next - w.offset;
          at = next;
        }
        return true;
      });
      if (read_status) flush();
    } else {
      // Pieces of kWindow bytes from offset 0: the same windows as a file's.
      st = source.pieces(kWindow, [&](uint64_t off, std::shared_ptr<std::string> bytes) {
        Window w;
        w.offset = off;
        w.length = bytes->size();
        auto data = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size());
        w.pieces.push_back(Piece{off, bytes->size(), false, 0, data, nullptr});
        w.owned = std::move(bytes);
        return jobs.push(std::move(w));
      });
    }
    if (!st && read_status) read_status = st;
    jobs.close();
  });

  std::mutex packs_mu;
  Status pack_status = ok();  // a pack that could not be written, or a window that failed

  // Workers: window -> prints, and chunks (reused, or cut, hashed and sealed when new).
  std::atomic<unsigned> live(workers);
  std::vector<std::thread> pool;
  for (unsigned w = 0; w < workers; ++w) {
    pool.emplace_back([&] {
      bool open = true;
      while (open) {
        auto window = jobs.pop();
        if (!window) break;
        put_detail::mark_zero_runs(*window);
        auto report = put_detail::process_window(ctx, *window, [&](ChunkOut&& c) { return open = results.push(WorkerResult{std::move(c), nullptr}); });
        if (!report.failed.empty()) {
          {
            std::lock_guard lk(packs_mu);
            if (pack_status) pack_status = Error(Errc::kDamaged, "put " + name + ": " + report.failed);
          }
          jobs.close();
          results.close();
          break;
        }
        if (open) open = results.push(WorkerResult{{}, std::make_unique<WindowReport>(std::move(report))});
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
  // Written packs' buffers, handed back to the PackWriter (common/allocator.h: fresh memory costs page faults).
  BoundedQueue<std::vector<uint8_t>> spare_buffers(uploaders + 1);
  std::vector<PackListing> new_packs;
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
        spare_buffers.try_push(std::move(p->bytes));
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

  // This thread: results -> packs, extents and the image map.
  std::vector<Extent> extents;
  ImageMap map;
  PackWriter writer(pack_size_);
  auto seal_pack = [&] {
    if (writer.count() == 0) return;
    auto entries = writer.entries();
    finished.push(FinishedPack{writer.finish(key_), std::move(entries)});
    if (auto spare = spare_buffers.try_pop()) writer.reuse(std::move(*spare));
    ++stats.packs;
  };
  uint64_t done = 0;
  while (auto res = results.pop()) {
    if (res->report) {
      auto& rep = *res->report;
      if (map.regions.size() < rep.first_region + rep.prints.size()) map.regions.resize(rep.first_region + rep.prints.size());
      std::copy(rep.prints.begin(), rep.prints.end(), map.regions.begin() + static_cast<std::ptrdiff_t>(rep.first_region));
      stats.reused_bytes += rep.reused_bytes;
      stats.chunked_bytes += rep.chunked_bytes;
      stats.changed_regions += rep.changed_regions;
      stats.map_mismatches.insert(stats.map_mismatches.end(), rep.mismatches.begin(), rep.mismatches.end());
      if (stats.map_unverified.empty()) stats.map_unverified = rep.unverified;
      continue;
    }
    auto* r = &res->chunk;
    ++stats.chunks;
    done += r->length;
    if (r->hole || r->zero) {
      if (!r->reused && r->hole) {
        stats.hole_bytes += r->length - r->zeros_read;
        stats.zero_bytes += r->zeros_read;
      } else if (!r->reused) {
        stats.zero_bytes += r->length;
      }
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
  snap.size = known ? known->size : options.allocated ? options.allocated->size : source.size();
  snap.tags = options.tags;
  for (auto& e : extents) append_extent(snap.extents, e);
  snap.id = "(new)";
  KVB_CHECK(validate_extents(snap));
  std::sort(stats.map_mismatches.begin(), stats.map_mismatches.end());
  stats.regions = map.regions.size();
  if (map.regions.size() != (snap.size + kRegionSize - 1) / kRegionSize) {
    return Error(Errc::kInternal, "put " + name + ": the image map has " + std::to_string(map.regions.size()) + " regions for " +
                                      std::to_string(snap.size) + " bytes");
  }
  snap.map = std::move(map);
  if (parent && stats.reused_bytes > 0) stats.full_reason.clear();
  if (known) {
    uint64_t read = 0;
    for (const auto& r : known->changed) read += r.length;
    stats.skipped_bytes = snap.size - read;
  }
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
