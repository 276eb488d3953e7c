// LatencyStats: a small histogram of durations (count, sum, max and
// power-of-two buckets in microseconds) for the test cluster's own
// instrumentation: how late the loop runs its timers, how long request
// handlers and snapshot cuts take. Recording is a clock-free add (the caller
// measures), cheap enough for every request.
//
// Invariant: not thread-safe; each instance is touched from one thread (the
// loop thread) only. quantile_ms() is the upper bound of the bucket holding
// the q-th value, so it over-states by at most 2x (max is exact).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <cstdint>

namespace kvb::testcluster {

class LatencyStats {
 public:
  void record(std::chrono::nanoseconds d) {
    int64_t us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    if (us < 0) us = 0;
    ++count_;
    sum_us_ += static_cast<uint64_t>(us);
    if (static_cast<uint64_t>(us) > max_us_) max_us_ = static_cast<uint64_t>(us);
    size_t b = static_cast<size_t>(std::bit_width(static_cast<uint64_t>(us)));  // 0 for 0 us, k for [2^(k-1), 2^k)
    if (b >= buckets_.size()) b = buckets_.size() - 1;
    ++buckets_[b];
  }
  uint64_t count() const { return count_; }
  double sum_ms() const { return static_cast<double>(sum_us_) / 1e3; }
  double max_ms() const { return static_cast<double>(max_us_) / 1e3; }
  double quantile_ms(double q) const {
    if (count_ == 0) return 0;
    auto rank = static_cast<uint64_t>(q * static_cast<double>(count_ - 1)) + 1;
    uint64_t seen = 0;
    for (size_t b = 0; b < buckets_.size(); ++b) {
      seen += buckets_[b];
      if (seen >= rank) {
        double upper_us = b == 0 ? 0.0 : static_cast<double>(uint64_t{1} << b);
        return std::min(upper_us, static_cast<double>(max_us_)) / 1e3;
      }
    }
    return max_ms();
  }

 private:
  uint64_t count_ = 0;
  uint64_t sum_us_ = 0;
  uint64_t max_us_ = 0;
  std::array<uint64_t, 40> buckets_{};
};

}  // namespace kvb::testcluster
