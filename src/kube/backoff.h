// Retry timing for API calls: exponential backoff with full jitter, bounded by
// a total budget, and honouring the server's Retry-After.
//
// Pure logic (no clocks, no sleeping): the caller asks next_delay() and waits
// however it waits. Deterministic given the seed, so it is unit-tested exactly.
#pragma once

#include "common/error.h"

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>

namespace kvb::kube {

struct BackoffPolicy {
  std::chrono::milliseconds initial{100};
  std::chrono::milliseconds max{5'000};
  double multiplier = 2.0;
  int max_attempts = 10;  // including the first
};

class Backoff {
 public:
  Backoff(BackoffPolicy policy, std::chrono::milliseconds budget, uint64_t seed);

  // Given that attempt `attempts_made` (1-based) failed with `e` after `elapsed`
  // since the first attempt, how long to wait before the next one; nullopt when
  // the error is not worth retrying or the budget/attempts are exhausted.
  std::optional<std::chrono::milliseconds> next_delay(const Error& e, int attempts_made,
                                                      std::chrono::milliseconds elapsed);

 private:
  BackoffPolicy policy_;
  std::chrono::milliseconds budget_;
  std::mt19937_64 rng_;
};

}  // namespace kvb::kube
