// Client-side rate limiting like client-go's token bucket (QPS + burst).
//
// Pure logic over an injected clock: reserve() takes a token and says how long
// the caller must wait before using it. The bucket starts full (burst tokens)
// and refills at qps tokens per second. qps <= 0 disables limiting.
#pragma once

#include <chrono>
#include <mutex>

namespace kvb::kube {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  RateLimiter(double qps, int burst);

  // Takes one token; returns the wait before it may be used (zero if available now).
  std::chrono::nanoseconds reserve(Clock::time_point now);
  std::chrono::nanoseconds reserve() { return reserve(Clock::now()); }

  double qps() const { return qps_; }
  int burst() const { return burst_; }

 private:
  std::mutex mu_;
  double qps_;
  int burst_;
  double tokens_;
  Clock::time_point last_{};
  bool started_ = false;
};

}  // namespace kvb::kube
