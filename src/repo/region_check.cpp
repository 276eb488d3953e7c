#include "repo/region_check.h"

#include "repo/snapshot.h"

#include <algorithm>

namespace kvb::repo {

RegionCheck::RegionCheck(const Snapshot& snap, uint64_t seed, Data data, Zeros zeros)
    : snap_(snap), map_(snap.map ? &*snap.map : nullptr), data_(std::move(data)), zeros_(std::move(zeros)), seed_(seed), hasher_(seed) {}

Status RegionCheck::data(std::vector<uint8_t>&& bytes) {
  const uint64_t n = bytes.size();
  if (n == 0) return ok();
  if (!map_) {
    KVB_CHECK(data_(fed_, bytes));
    fed_ += n;
    return ok();
  }
  pending_.push_back(Piece{fed_, n, std::move(bytes), 0});
  const auto& b = pending_.back().bytes;
  for (uint64_t at = 0; at < n;) {
    const uint64_t take = in_region(n - at);
    hasher_.data(std::span<const uint8_t>(b.data() + at, static_cast<size_t>(take)));
    at += take;
    KVB_CHECK(hashed(take));
  }
  return hand_on();
}

Status RegionCheck::zeros(uint64_t length) {
  if (length == 0) return ok();
  if (!map_) {
    KVB_CHECK(zeros_(fed_, length));
    fed_ += length;
    return ok();
  }
  pending_.push_back(Piece{fed_, length, {}, 0});
  for (uint64_t at = 0; at < length;) {
    const uint64_t take = in_region(length - at);
    if (fed_ == region_ * map_->region_size && take == map_->region_size && region_ < map_->regions.size()) {
      // A whole region of zeros (most of a sparse image): its print is known.
      if (!zero_region_) {
        RegionHasher h(seed_);
        h.hole(map_->region_size);
        zero_region_ = h.finish().content;
      }
      if (map_->regions[region_].content == *zero_region_) {
        at += take;
        fed_ += take;
        matched();
        continue;
      }
    }
    hasher_.hole(take);
    at += take;
    KVB_CHECK(hashed(take));
  }
  return hand_on();
}

uint64_t RegionCheck::region_end() const { return std::min(snap_.size, (region_ + 1) * map_->region_size); }

uint64_t RegionCheck::in_region(uint64_t left) const {
  const uint64_t end = region_end();
  return end > fed_ ? std::min(left, end - fed_) : left;
}

void RegionCheck::matched() {
  checked_ = region_end();
  ++region_;
}

Status RegionCheck::hashed(uint64_t n) {
  fed_ += n;
  const uint64_t start = region_ * map_->region_size;
  const uint64_t region_end = this->region_end();
  if (fed_ < region_end) return ok();
  if (fed_ > region_end || region_ >= map_->regions.size()) {
    return Error(Errc::kDamaged, "snapshot " + snap_.id + " (" + snap_.name + "): its extents run past byte " + std::to_string(region_end) +
                                     " of an image of " + std::to_string(snap_.size) + " bytes (run kvbackup repo check)");
  }
  if (hasher_.finish().content != map_->regions[region_].content) {
    return Error(Errc::kDamaged, "snapshot " + snap_.id + " (" + snap_.name + "): bytes " + std::to_string(start) + ".." +
                                     std::to_string(region_end) + " of the image (region " + std::to_string(region_) +
                                     ") do not match the fingerprint its image map took when they were stored, so they are not "
                                     "restored (run kvbackup repo check --read-data)");
  }
  matched();
  return ok();
}

Status RegionCheck::hand_on() {
  while (!pending_.empty()) {
    Piece& p = pending_.front();
    const uint64_t upto = std::min(p.offset + p.length, checked_);
    if (upto <= p.offset + p.handed) break;
    const uint64_t n = upto - p.offset - p.handed;
    if (p.bytes.empty()) {
      KVB_CHECK(zeros_(p.offset + p.handed, n));
    } else {
      KVB_CHECK(data_(p.offset + p.handed, std::span<const uint8_t>(p.bytes.data() + p.handed, static_cast<size_t>(n))));
    }
    p.handed += n;
    if (p.handed < p.length) break;
    pending_.pop_front();
  }
  return ok();
}

Status RegionCheck::finish() {
  if (fed_ != snap_.size || !pending_.empty()) {
    return Error(Errc::kDamaged, "snapshot " + snap_.id + " (" + snap_.name + "): its extents end at byte " + std::to_string(fed_) +
                                     " of an image of " + std::to_string(snap_.size) + " bytes (run kvbackup repo check)");
  }
  return ok();
}

}  // namespace kvb::repo
