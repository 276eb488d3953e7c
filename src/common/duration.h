// Go-style durations ("60s", "5m0s", "1h30m", "200ms", "1.5s"), as used by
// Kubernetes, Velero hook annotations and kvbackup's own flags and files.
//
// parse_duration() accepts exactly what Go's time.ParseDuration accepts except
// negative values (no kvbackup setting may be negative). format_duration()
// writes what Go's Duration.String() writes, so values round-trip with Go tools.
#pragma once

#include "common/error.h"

#include <chrono>
#include <string>
#include <string_view>

namespace kvb {

Result<std::chrono::nanoseconds> parse_duration(std::string_view text);
std::string format_duration(std::chrono::nanoseconds d);

// Milliseconds as a short decimal string for reports ("212 ms", "1.5 s").
std::string format_millis(std::chrono::nanoseconds d);

}  // namespace kvb
