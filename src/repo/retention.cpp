#include "repo/retention.h"

#include "common/time.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <numeric>

namespace kvb::repo {

namespace {

struct Buckets {
  std::string day, week, month;
};

Buckets buckets(WallTime t) {
  using namespace std::chrono;
  auto day = floor<days>(t);
  year_month_day ymd{day};
  // ISO 8601 week: the week (Monday first) holding the Thursday of this date's week.
  weekday wd{day};
  auto thursday = day + days(3 - static_cast<int>((wd.c_encoding() + 6) % 7));
  year_month_day th{thursday};
  auto jan1 = sys_days{th.year() / January / 1};
  int week = static_cast<int>((thursday - jan1).count() / 7 + 1);
  char d[16], w[16], m[16];
  std::snprintf(d, sizeof d, "%04d-%02u-%02u", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  std::snprintf(w, sizeof w, "%04d-W%02d", static_cast<int>(th.year()), week);
  std::snprintf(m, sizeof m, "%04d-%02u", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()));
  return {d, w, m};
}

}  // namespace

Result<std::vector<std::string>> apply_retention(const std::vector<Snapshot>& snapshots, const RetentionPolicy& policy) {
  std::vector<std::string> reasons(snapshots.size());
  if (policy.empty()) {
    std::fill(reasons.begin(), reasons.end(), "no retention rule");
    return reasons;
  }
  std::vector<WallTime> times(snapshots.size());
  for (size_t i = 0; i < snapshots.size(); ++i) {
    auto t = parse_rfc3339(snapshots[i].time);
    if (!t) return Error(Errc::kParse, "snapshot " + snapshots[i].id + ": time \"" + snapshots[i].time + "\": " + t.error().message);
    times[i] = *t;
  }
  std::map<std::string, std::vector<size_t>> groups;
  for (size_t i = 0; i < snapshots.size(); ++i) groups[snapshots[i].name].push_back(i);
  for (auto& [name, members] : groups) {
    std::sort(members.begin(), members.end(), [&](size_t a, size_t b) { return times[a] > times[b]; });  // newest first
    struct Rule {
      int left;
      const char* label;
      std::string Buckets::*bucket;
      std::string last_bucket;
    };
    Rule rules[] = {{policy.daily, "daily", &Buckets::day, {}},
                    {policy.weekly, "weekly", &Buckets::week, {}},
                    {policy.monthly, "monthly", &Buckets::month, {}}};
    int last_left = policy.last;
    for (size_t i : members) {
      std::string why;
      if (last_left > 0) {
        --last_left;
        why = "last";
      }
      auto b = buckets(times[i]);
      for (auto& r : rules) {
        if (r.left <= 0 || b.*r.bucket == r.last_bucket) continue;
        r.last_bucket = b.*r.bucket;
        --r.left;
        why += (why.empty() ? "" : ", ") + std::string(r.label) + " " + r.last_bucket;
      }
      reasons[i] = why;
    }
  }
  return reasons;
}

}  // namespace kvb::repo
