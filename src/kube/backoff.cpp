#include "kube/backoff.h"

#include <algorithm>
#include <cmath>

namespace kvb::kube {

Backoff::Backoff(BackoffPolicy policy, std::chrono::milliseconds budget, uint64_t seed)
    : policy_(policy), budget_(budget), rng_(seed) {}

std::optional<std::chrono::milliseconds> Backoff::next_delay(const Error& e, int attempts_made,
                                                             std::chrono::milliseconds elapsed) {
  if (!e.is_transient()) return std::nullopt;
  if (attempts_made >= policy_.max_attempts) return std::nullopt;
  std::chrono::milliseconds delay;
  if (e.retry_after) {
    delay = *e.retry_after;  // the server knows best; no jitter
  } else {
    double cap = static_cast<double>(policy_.initial.count()) * std::pow(policy_.multiplier, attempts_made - 1);
    cap = std::min(cap, static_cast<double>(policy_.max.count()));
    // Full jitter (AWS architecture blog): uniform in [cap/2, cap] keeps some spacing.
    std::uniform_real_distribution<double> dist(cap / 2, cap);
    delay = std::chrono::milliseconds(static_cast<int64_t>(dist(rng_)));
  }
  if (elapsed + delay >= budget_) return std::nullopt;
  return delay;
}

}  // namespace kvb::kube
