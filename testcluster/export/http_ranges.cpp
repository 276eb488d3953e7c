#include "testcluster/export/http_ranges.h"

#include <cctype>
#include <cstring>
#include <ctime>

namespace kvb::testcluster {

namespace {

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && (s[a] == ' ' || s[a] == '\t')) ++a;
  while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t')) --b;
  return s.substr(a, b - a);
}

std::optional<uint64_t> parse_u64(const std::string& s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

}  // namespace

std::string ByteRange::content_range(uint64_t size) const {
  return "bytes " + std::to_string(start) + "-" + std::to_string(start + length - 1) + "/" + std::to_string(size);
}

std::string http_date(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday], tm.tm_mday, kMonths[tm.tm_mon],
                tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::optional<int64_t> parse_http_date(const std::string& s) {
  char day[4] = {0}, mon[4] = {0};
  int d = 0, y = 0, hh = 0, mm = 0, ss = 0;
  if (std::sscanf(s.c_str(), "%3s, %d %3s %d %d:%d:%d GMT", day, &d, mon, &y, &hh, &mm, &ss) != 7) return std::nullopt;
  int m = -1;
  for (int i = 0; i < 12; ++i) {
    if (std::strcmp(mon, kMonths[i]) == 0) m = i;
  }
  if (m < 0) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = m;
  tm.tm_mday = d;
  tm.tm_hour = hh;
  tm.tm_min = mm;
  tm.tm_sec = ss;
  return static_cast<int64_t>(::timegm(&tm));
}

RangePlan plan_ranges(const std::string& range_header, const std::string& if_range, uint64_t size, int64_t modified_unix) {
  RangePlan plan;
  std::string range = trim(range_header);
  if (range.empty()) return plan;
  if (!if_range.empty()) {
    std::string ir = trim(if_range);
    bool etag = !ir.empty() && (ir.front() == '"' || ir.rfind("W/", 0) == 0);
    auto date = etag ? std::nullopt : parse_http_date(ir);
    if (!date || *date != modified_unix) return plan;  // the Range is ignored: whole content
  }
  const std::string unit = "bytes=";
  auto unsatisfiable = [&] {
    plan.status = 416;
    plan.ranges.clear();
    return plan;
  };
  if (range.compare(0, unit.size(), unit) != 0) return unsatisfiable();
  bool no_overlap = false;
  std::string specs = range.substr(unit.size());
  size_t pos = 0;
  while (pos <= specs.size()) {
    size_t comma = specs.find(',', pos);
    std::string spec = trim(specs.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
    pos = comma == std::string::npos ? specs.size() + 1 : comma + 1;
    if (spec.empty()) continue;
    size_t dash = spec.find('-');
    if (dash == std::string::npos) return unsatisfiable();
    std::string a = trim(spec.substr(0, dash)), b = trim(spec.substr(dash + 1));
    ByteRange r;
    if (a.empty()) {  // suffix: the last n bytes
      auto n = parse_u64(b);
      if (!n) return unsatisfiable();
      if (*n == 0) {
        no_overlap = true;
        continue;
      }
      uint64_t len = std::min(*n, size);
      r.start = size - len;
      r.length = len;
    } else {
      auto s = parse_u64(a);
      if (!s) return unsatisfiable();
      if (*s >= size) {
        no_overlap = true;
        continue;
      }
      r.start = *s;
      if (b.empty()) {
        r.length = size - r.start;
      } else {
        auto e = parse_u64(b);
        if (!e || *s > *e) return unsatisfiable();
        uint64_t end = std::min(*e, size - 1);
        r.length = end - r.start + 1;
      }
    }
    plan.ranges.push_back(r);
  }
  if (plan.ranges.empty()) {
    if (no_overlap) return unsatisfiable();
    return unsatisfiable();  // "bytes=" with no spec at all
  }
  uint64_t sum = 0;
  for (const auto& r : plan.ranges) sum += r.length;
  if (sum > size) {
    plan.ranges.clear();  // Go serves the whole content rather than more than it
    return plan;
  }
  plan.status = 206;
  return plan;
}

Multipart multipart_framing(const std::vector<ByteRange>& ranges, uint64_t size, const std::string& content_type,
                            const std::string& boundary) {
  Multipart m;
  m.boundary = boundary;
  bool first = true;
  for (const auto& r : ranges) {
    std::string h = first ? "" : "\r\n";
    first = false;
    h += "--" + boundary + "\r\nContent-Range: " + r.content_range(size) + "\r\nContent-Type: " + content_type + "\r\n\r\n";
    m.part_headers.push_back(std::move(h));
  }
  m.closing = "\r\n--" + boundary + "--\r\n";
  return m;
}

uint64_t Multipart::total(const std::vector<ByteRange>& ranges) const {
  uint64_t t = closing.size();
  for (size_t i = 0; i < ranges.size() && i < part_headers.size(); ++i) t += part_headers[i].size() + ranges[i].length;
  return t;
}

}  // namespace kvb::testcluster
