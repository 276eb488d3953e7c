#include "kube/rate_limiter.h"

#include <algorithm>

namespace kvb::kube {

RateLimiter::RateLimiter(double qps, int burst) : qps_(qps), burst_(std::max(burst, 1)), tokens_(burst_) {}

std::chrono::nanoseconds RateLimiter::reserve(Clock::time_point now) {
  if (qps_ <= 0) return std::chrono::nanoseconds(0);
  std::lock_guard lock(mu_);
  if (!started_) {
    last_ = now;
    started_ = true;
  }
  if (now > last_) {
    double elapsed = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min<double>(burst_, tokens_ + elapsed * qps_);
    last_ = now;
  }
  tokens_ -= 1;  // may go negative: callers queue up behind each other
  if (tokens_ >= 0) return std::chrono::nanoseconds(0);
  return std::chrono::nanoseconds(static_cast<int64_t>(-tokens_ / qps_ * 1e9));
}

}  // namespace kvb::kube
