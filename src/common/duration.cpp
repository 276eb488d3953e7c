#include "common/duration.h"

#include <cstdint>
#include <cstdio>
#include <limits>

namespace kvb {
namespace {

struct Unit {
  std::string_view name;
  int64_t nanos;
};

constexpr Unit kUnits[] = {
    {"ns", 1},
    {"us", 1'000},
    {"\xC2\xB5s", 1'000},  // U+00B5 micro sign
    {"\xCE\xBCs", 1'000},  // U+03BC Greek mu
    {"ms", 1'000'000},
    {"s", 1'000'000'000},
    {"m", 60'000'000'000},
    {"h", 3'600'000'000'000},
};

Error bad(std::string_view text, std::string_view why) {
  return Error(Errc::kInvalidArgument,
               "invalid duration \"" + std::string(text) + "\": " + std::string(why) +
                   " (examples: 60s, 5m0s, 1h30m, 250ms)");
}

}  // namespace

Result<std::chrono::nanoseconds> parse_duration(std::string_view text) {
  std::string_view s = text;
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (!s.empty() && s.front() == '-') return bad(text, "must not be negative");
  if (s == "0") return std::chrono::nanoseconds(0);
  if (s.empty()) return bad(text, "empty");

  long double total = 0;
  while (!s.empty()) {
    // Number: digits, optional fraction.
    size_t i = 0;
    long double whole = 0;
    bool digits = false;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      whole = whole * 10 + (s[i] - '0');
      ++i;
      digits = true;
    }
    long double frac = 0, scale = 1;
    if (i < s.size() && s[i] == '.') {
      ++i;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        frac = frac * 10 + (s[i] - '0');
        scale *= 10;
        ++i;
        digits = true;
      }
    }
    if (!digits) return bad(text, "expected a number");
    s.remove_prefix(i);
    // Unit: longest match among the known units.
    size_t j = 0;
    while (j < s.size() && !(s[j] >= '0' && s[j] <= '9') && s[j] != '.') ++j;
    std::string_view unit = s.substr(0, j);
    if (unit.empty()) return bad(text, "missing unit");
    int64_t nanos = 0;
    for (const Unit& u : kUnits) {
      if (u.name == unit) nanos = u.nanos;
    }
    if (nanos == 0) return bad(text, "unknown unit \"" + std::string(unit) + "\"");
    total += (whole + frac / scale) * static_cast<long double>(nanos);
    if (total > static_cast<long double>(std::numeric_limits<int64_t>::max())) {
      return bad(text, "too large");
    }
    s.remove_prefix(j);
  }
  return std::chrono::nanoseconds(static_cast<int64_t>(total + 0.5L));
}

std::string format_duration(std::chrono::nanoseconds d) {
  int64_t n = d.count();
  if (n == 0) return "0s";
  std::string sign;
  uint64_t u = n < 0 ? static_cast<uint64_t>(-(n + 1)) + 1 : static_cast<uint64_t>(n);
  if (n < 0) sign = "-";

  auto fraction = [](uint64_t value, int digits) {
    // value has `digits` fractional digits; returns ".xyz" without trailing zeros.
    std::string f(static_cast<size_t>(digits), '0');
    for (int k = digits - 1; k >= 0; --k) {
      f[static_cast<size_t>(k)] = static_cast<char>('0' + value % 10);
      value /= 10;
    }
    while (!f.empty() && f.back() == '0') f.pop_back();
    return f.empty() ? std::string() : "." + f;
  };

  if (u < 1'000'000'000ULL) {
    // Sub-second: ns, µs or ms with a fraction, like Go.
    if (u < 1'000) return sign + std::to_string(u) + "ns";
    if (u < 1'000'000) return sign + std::to_string(u / 1'000) + fraction(u % 1'000, 3) + "\xC2\xB5s";
    return sign + std::to_string(u / 1'000'000) + fraction(u % 1'000'000, 6) + "ms";
  }
  uint64_t secs = u / 1'000'000'000ULL;
  uint64_t sub = u % 1'000'000'000ULL;
  uint64_t hours = secs / 3600, minutes = (secs / 60) % 60, seconds = secs % 60;
  std::string out = sign;
  if (hours > 0) out += std::to_string(hours) + "h";
  if (hours > 0 || minutes > 0) out += std::to_string(minutes) + "m";
  out += std::to_string(seconds) + fraction(sub, 9) + "s";
  return out;
}

std::string format_millis(std::chrono::nanoseconds d) {
  double ms = static_cast<double>(d.count()) / 1e6;
  char buf[64];
  if (ms < 10000) {
    std::snprintf(buf, sizeof buf, "%.0f ms", ms);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f s", ms / 1000);
  }
  return buf;
}

}  // namespace kvb
