// parallel_for: runs fn(i) for i in [0, n) on up to `workers` threads and
// returns when every call has returned. Calls for different i run
// concurrently: fn must be safe for that; the order of calls is unspecified.
#pragma once

#include <cstddef>
#include <functional>

namespace kvb {

void parallel_for(size_t n, int workers, const std::function<void(size_t)>& fn);

}  // namespace kvb
