#include "common/time.h"

#include <cstdio>
#include <ctime>

namespace kvb {
namespace {

bool digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  out = v;
  return true;
}

}  // namespace

std::string format_rfc3339(WallTime t, TimePrecision p) {
  auto ns_total = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  int64_t secs = ns_total / 1'000'000'000;
  int64_t nanos = ns_total % 1'000'000'000;
  if (nanos < 0) {
    nanos += 1'000'000'000;
    secs -= 1;
  }
  std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  std::string out(buf, static_cast<size_t>(n));
  switch (p) {
    case TimePrecision::kSeconds: break;
    case TimePrecision::kMillis:
      std::snprintf(buf, sizeof buf, ".%03lld", static_cast<long long>(nanos / 1'000'000));
      out += buf;
      break;
    case TimePrecision::kMicros:
      std::snprintf(buf, sizeof buf, ".%06lld", static_cast<long long>(nanos / 1'000));
      out += buf;
      break;
    case TimePrecision::kNanos:
      std::snprintf(buf, sizeof buf, ".%09lld", static_cast<long long>(nanos));
      out += buf;
      break;
  }
  out += "Z";
  return out;
}

Result<WallTime> parse_rfc3339(std::string_view s) {
  auto bad = [&] {
    return Error(Errc::kParse, "invalid RFC 3339 time \"" + std::string(s.substr(0, 64)) + "\"");
  };
  std::tm tm{};
  int year, mon, day, hour, min, sec;
  if (!digits(s, 0, 4, year) || s.size() < 19 || s[4] != '-' || !digits(s, 5, 2, mon) ||
      s[7] != '-' || !digits(s, 8, 2, day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !digits(s, 11, 2, hour) || s[13] != ':' || !digits(s, 14, 2, min) || s[16] != ':' ||
      !digits(s, 17, 2, sec)) {
    return bad();
  }
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) return bad();
  // Nanoseconds since 1970 in 64 bits reach from 1677-09-21 to 2262-04-11 (found by libFuzzer:
  // year 9999 overflowed the conversion).
  if (year < 1678 || year > 2261) {
    return Error(Errc::kParse, "time \"" + std::string(s.substr(0, 40)) + "\" is outside the years 1678..2261");
  }
  size_t pos = 19;
  int64_t nanos = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int64_t scale = 100'000'000;
    size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      nanos += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return bad();
  }
  int64_t offset_secs = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !digits(s, pos + 4, 2, om)) {
      return bad();
    }
    offset_secs = (oh * 3600 + om * 60) * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return bad();
  }
  if (pos != s.size()) return bad();
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  int64_t epoch = static_cast<int64_t>(timegm(&tm)) - offset_secs;
  return WallTime(std::chrono::duration_cast<WallClock::duration>(std::chrono::seconds(epoch) +
                                                                  std::chrono::nanoseconds(nanos)));
}

}  // namespace kvb
