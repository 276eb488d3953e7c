#include "repo/put_window.h"

#include <algorithm>
#include <cstring>

namespace kvb::repo::put_detail {

namespace {

// The prints of the window's regions (regions are aligned to kRegionSize, and
// so is the window's start).
std::vector<RegionPrint> fingerprint(const PutContext& ctx, const Window& w) {
  std::vector<RegionPrint> out;
  out.reserve((w.length + kRegionSize - 1) / kRegionSize);
  RegionHasher h(ctx.seed);
  const uint64_t end = w.offset + w.length;
  size_t k = 0;
  for (uint64_t r = w.offset; r < end; r += kRegionSize) {
    const uint64_t r_end = std::min(end, r + kRegionSize);
    if (const size_t i = (r - w.offset) / kRegionSize; i < w.known.size() && w.known[i]) {
      out.push_back(ctx.parent->map->regions[r / kRegionSize]);  // known unchanged: never read
      continue;
    }
    while (w.pieces[k].offset + w.pieces[k].length <= r) ++k;
    const auto& first = w.pieces[k];
    if (first.hole && r_end - r == kRegionSize && first.offset <= r && first.offset + first.length >= r_end) {
      out.push_back(ctx.hole_region);  // the common case of a sparse image: nothing to hash
      continue;
    }
    for (size_t i = k; i < w.pieces.size() && w.pieces[i].offset < r_end; ++i) {
      const auto& p = w.pieces[i];
      uint64_t s = std::max(r, p.offset), e = std::min(r_end, p.offset + p.length);
      if (p.hole) {
        h.hole(e - s);
      } else {
        h.data(w.bytes(p).subspan(s - p.offset, e - s));
      }
    }
    out.push_back(h.finish());
  }
  return out;
}

class WindowWork {
 public:
  WindowWork(const PutContext& ctx, Window& w, const std::function<bool(ChunkOut&&)>& emit)
      : ctx_(ctx), w_(w), emit_(emit), end_(w.offset + w.length) {}

  WindowReport run() {
    report_.first_region = w_.offset / kRegionSize;
    report_.prints = fingerprint(ctx_, w_);
    if (ctx_.parent) {
      clean_.resize(report_.prints.size());
      for (size_t i = 0; i < clean_.size(); ++i) {
        clean_[i] = (i < w_.known.size() && w_.known[i]) || region_unchanged(report_.first_region + i);
        report_.changed_regions += clean_[i] ? 0 : 1;
      }
    }
    const bool any_clean = std::find(clean_.begin(), clean_.end(), true) != clean_.end();
    if (ctx_.parent && ctx_.reuse && any_clean) {
      walk();
    } else {
      if (!fill(w_.offset, w_.length)) return std::move(report_);
      chunk_all();
      if (ctx_.parent && ctx_.verify && any_clean) verify();
    }
    return std::move(report_);
  }

 private:
  bool region_unchanged(uint64_t r) const {
    const auto& pm = *ctx_.parent->map;
    if (r >= pm.regions.size()) return false;
    const uint64_t start = r * kRegionSize;
    const uint64_t len_new = std::min(kRegionSize, end_ - start);
    const uint64_t len_old = std::min(kRegionSize, ctx_.parent->size - start);
    return len_new == len_old && pm.regions[r] == report_.prints[r - report_.first_region];
  }

  // A parent extent can be taken as it is when every region under it, and
  // the region holding the byte after it (whose holes decide whether the
  // chunk ended there), is unchanged; a data chunk's blob must be indexed.
  bool reusable(const Extent& e) const {
    const uint64_t first = e.offset / kRegionSize - report_.first_region;
    uint64_t after = e.offset + e.length;
    uint64_t last = (after < end_ ? after : after - 1) / kRegionSize - report_.first_region;
    for (uint64_t i = first; i <= last; ++i) {
      if (i >= clean_.size() || !clean_[i]) return false;
    }
    return !e.blob || ctx_.index.find(*e.blob);
  }

  bool push(ChunkOut&& c) {
    if (ctx_.verify) mine_.push_back(Extent{c.offset, c.length, c.hole || c.zero ? std::nullopt : std::optional<BlobId>(c.id)});
    return open_ = emit_(std::move(c));
  }

  bool chunk(uint64_t offset, std::span<const uint8_t> data) {
    report_.chunked_bytes += data.size();
    ChunkOut c;
    c.offset = offset;
    c.length = data.size();
    if (all_zero(data)) {
      c.zero = true;
    } else {
      c.id = blob_id(ctx_.key, data);
      bool claimed = false;
      if (!ctx_.index.find(c.id)) {
        std::lock_guard lk(*ctx_.claimed_mu);
        claimed = ctx_.claimed->insert(c.id).second;
      }
      if (claimed) {
        c.is_new = true;
        c.blob = encode_blob(ctx_.key, c.id, data, ctx_.level);
      }
    }
    return push(std::move(c));
  }

  bool hole(uint64_t offset, uint64_t length, uint64_t zeros_read) {
    ChunkOut c;
    c.offset = offset;
    c.length = length;
    c.hole = true;
    c.zeros_read = std::min(length, zeros_read);
    return push(std::move(c));
  }

  // Every byte through FastCDC, restarting at the window's start and every hole's end.
  void chunk_all() {
    for (const auto& p : w_.pieces) {
      if (!open_) return;
      if (p.hole) {
        hole(p.offset, p.length, p.zeros_read);
        continue;
      }
      auto bytes = w_.bytes(p);
      for (size_t pos = 0; open_ && pos < bytes.size();) {
        size_t n = ctx_.chunker.cut(bytes.subspan(pos), true);
        chunk(p.offset + pos, bytes.subspan(pos, n));
        pos += n;
      }
    }
  }

  // The parent's extents in this window: zero runs clipped to it; data
  // extents only when wholly inside (a put never cuts across a window).
  std::vector<Extent> parent_extents() const {
    std::vector<Extent> out;
    for (const auto& e : covering_extents(ctx_.parent->extents, w_.offset, w_.length)) {
      if (!e.blob || (e.offset >= w_.offset && e.offset + e.length <= end_)) out.push_back(e);
    }
    return out;
  }

  // Reuse where unchanged; chunk from the last shared boundary until a cut
  // lands on one of the parent's boundaries before an unchanged extent.
  void walk() {
    const auto pe = parent_extents();
    size_t j = 0, k = 0;
    for (uint64_t pos = w_.offset; open_ && pos < end_;) {
      while (j < pe.size() && pe[j].offset < pos) ++j;
      if (j < pe.size() && pe[j].offset == pos && reusable(pe[j])) {
        ChunkOut c;
        c.offset = pos;
        c.length = pe[j].length;
        c.reused = true;
        if (pe[j].blob) {
          c.id = *pe[j].blob;
        } else {
          c.zero = true;
        }
        report_.reused_bytes += c.length;
        push(std::move(c));
        pos += pe[j].length;
        continue;
      }
      while (w_.pieces[k].offset + w_.pieces[k].length <= pos) ++k;
      const auto& p = w_.pieces[k];
      const uint64_t p_end = p.offset + p.length;
      if (p.hole) {
        hole(pos, p_end - pos, p.zeros_read);  // from mid-hole: the split of the statistics is approximate
        pos = p_end;
        continue;
      }
      if (!fill(pos, std::min<uint64_t>(p_end - pos, ctx_.chunker.params().max))) return;
      auto bytes = w_.bytes(p).subspan(pos - p.offset);
      size_t n = ctx_.chunker.cut(bytes, true);
      chunk(pos, bytes.first(n));
      pos += n;
    }
  }

  // Known changes: the parent's bytes of the unread regions in [at, at + len),
  // which chunking is about to look at. A parent that cannot be read ends the
  // window (and the put) with an error.
  bool fill(uint64_t at, uint64_t len) {
    if (w_.known.empty()) return true;
    w_.filled.resize(w_.known.size());
    const uint64_t first = (at - w_.offset) / kRegionSize, last = (at + len - 1 - w_.offset) / kRegionSize;
    for (uint64_t i = first; i <= last && i < w_.known.size(); ++i) {
      if (!w_.known[i] || w_.filled[i]) continue;
      const uint64_t start = w_.offset + i * kRegionSize, rlen = std::min(kRegionSize, end_ - start);
      auto old = read_image_range(ctx_.loc, ctx_.index, ctx_.key, ctx_.parent->extents, start, rlen, cache_);
      if (!old) {
        report_.failed = "the parent's bytes at offset " + std::to_string(start) + ", next to a changed range, cannot be read: " + old.error().message;
        open_ = false;
        return false;
      }
      std::memcpy(w_.owned->data() + (start - w_.offset), old->data(), rlen);
      w_.filled[i] = true;
    }
    return true;
  }

  // --rehash: each region that fingerprints as unchanged must hold the
  // parent's bytes. Equal chunk lists prove it; else the bytes are compared.
  void verify() {
    BlobCache cache;
    for (size_t i = 0; i < clean_.size(); ++i) {
      if (!clean_[i]) continue;
      const uint64_t start = (report_.first_region + i) * kRegionSize;
      const uint64_t len = std::min(kRegionSize, end_ - start);
      if (covering_extents(mine_, start, len) == covering_extents(ctx_.parent->extents, start, len)) continue;
      auto old = read_image_range(ctx_.loc, ctx_.index, ctx_.key, ctx_.parent->extents, start, len, cache);
      if (!old) {
        if (report_.unverified.empty()) report_.unverified = old.error().message;
        report_.mismatches.push_back(start);
        continue;
      }
      if (!same_bytes(start, len, *old)) report_.mismatches.push_back(start);
    }
  }

  bool same_bytes(uint64_t start, uint64_t len, const std::vector<uint8_t>& old) const {
    for (const auto& p : w_.pieces) {
      uint64_t s = std::max(start, p.offset), e = std::min(start + len, p.offset + p.length);
      if (s >= e) continue;
      const uint8_t* want = old.data() + (s - start);
      if (p.hole) {
        if (!all_zero(std::span<const uint8_t>(want, e - s))) return false;
      } else if (std::memcmp(w_.bytes(p).data() + (s - p.offset), want, e - s) != 0) {
        return false;
      }
    }
    return true;
  }

  const PutContext& ctx_;
  Window& w_;
  BlobCache cache_;  // known changes: the parent's blobs read back
  const std::function<bool(ChunkOut&&)>& emit_;
  const uint64_t end_;
  WindowReport report_;
  std::vector<bool> clean_;   // per region of the window: fingerprints as in the parent
  std::vector<Extent> mine_;  // verify: the chunks cut here
  bool open_ = true;
};

}  // namespace

void mark_zero_runs(Window& w) {
  const uint64_t end = w.offset + w.length;

  // The zero runs, [start, end), block by block.
  struct Run {
    uint64_t start, end, read;
  };
  std::vector<Run> runs;
  uint64_t run = end, run_read = 0;  // start of the current run (`end`: none), and its bytes read
  size_t k = 0;                      // the first piece that reaches the block
  auto block_is_zero = [&](uint64_t b, uint64_t b_end, uint64_t& read) {
    // A region a put with known changes did not read: its bytes are not here
    // (fill() reads them back where chunking needs them), so it is data.
    if (const uint64_t r = (b - w.offset) / kRegionSize; r < w.known.size() && w.known[r]) return false;
    while (w.pieces[k].offset + w.pieces[k].length <= b) ++k;
    for (size_t i = k; i < w.pieces.size() && w.pieces[i].offset < b_end; ++i) {
      const auto& p = w.pieces[i];
      if (p.hole) continue;
      uint64_t s = std::max(b, p.offset), e = std::min(b_end, p.offset + p.length);
      if (!all_zero(p.data.subspan(s - p.offset, e - s))) return false;
      read += e - s;
    }
    return true;
  };
  for (uint64_t b = w.offset; b < end;) {
    const uint64_t b_end = std::min(end, (b / kZeroBlock + 1) * kZeroBlock);
    uint64_t read = 0;
    if (block_is_zero(b, b_end, read)) {
      if (run == end) run = b, run_read = 0;
      run_read += read;
    } else if (run != end) {
      if (b - run >= kZeroRun) runs.push_back(Run{run, b, run_read});
      run = end;
    }
    b = b_end;
  }
  if (run != end && end - run >= kZeroRun) runs.push_back(Run{run, end, run_read});

  // The bytes between runs become one data piece each, taken from the old
  // data piece that holds them all; where none does (a short file hole
  // between data, rare), the window's bytes are copied into one buffer.
  auto holder = [&](uint64_t s, uint64_t e) -> const Piece* {
    for (const auto& p : w.pieces) {
      if (!p.hole && p.offset <= s && e <= p.offset + p.length) return &p;
    }
    return nullptr;
  };
  std::vector<Piece> out;
  bool copy = false;
  auto add_data = [&](uint64_t s, uint64_t e) {
    Piece q;
    q.offset = s;
    q.length = e - s;
    if (const Piece* p = holder(s, e)) {
      q.data = p->data.subspan(s - p->offset, e - s);
      q.mapped = p->mapped;
    } else {
      copy = true;
    }
    out.push_back(std::move(q));
  };
  uint64_t pos = w.offset;
  for (const auto& r : runs) {
    if (r.start > pos) add_data(pos, r.start);
    Piece h;
    h.offset = r.start;
    h.length = r.end - r.start;
    h.hole = true;
    h.zeros_read = r.read;
    out.push_back(std::move(h));
    pos = r.end;
  }
  if (pos < end) add_data(pos, end);
  if (copy) {
    auto bytes = std::make_shared<std::string>(w.length, '\0');
    for (const auto& p : w.pieces) {
      if (!p.hole) std::memcpy(bytes->data() + (p.offset - w.offset), p.data.data(), p.length);
    }
    const auto all = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size());
    for (auto& q : out) {
      if (q.hole) continue;
      q.data = all.subspan(q.offset - w.offset, q.length);
      q.mapped = nullptr;
    }
    w.owned = std::move(bytes);
  }
  w.pieces = std::move(out);
}

RegionPrint hole_region_print(uint64_t seed) {
  RegionHasher h(seed);
  h.hole(kRegionSize);
  return h.finish();
}

WindowReport process_window(const PutContext& ctx, Window& w, const std::function<bool(ChunkOut&&)>& emit) {
  return WindowWork(ctx, w, emit).run();
}

}  // namespace kvb::repo::put_detail
