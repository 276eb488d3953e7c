// Wall-clock instants and their RFC 3339 text form, as Kubernetes writes them
// ("2026-11-25T17:08:00Z", metav1.Time) and with nanoseconds for timelines
// ("2026-11-25T17:08:00.123456789Z").
//
// All instants are UTC std::chrono::system_clock time points (nanosecond
// resolution on Linux). Parsing accepts any offset ("+02:00") and converts.
#pragma once

#include "common/error.h"

#include <chrono>
#include <string>
#include <string_view>

namespace kvb {

using WallClock = std::chrono::system_clock;
using WallTime = WallClock::time_point;

enum class TimePrecision { kSeconds, kMillis, kMicros, kNanos };

std::string format_rfc3339(WallTime t, TimePrecision p = TimePrecision::kSeconds);
Result<WallTime> parse_rfc3339(std::string_view text);

}  // namespace kvb
