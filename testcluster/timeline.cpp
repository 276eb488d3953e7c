#include "testcluster/timeline.h"

#include <boost/json.hpp>

#include <algorithm>

namespace kvb::testcluster {
namespace json = boost::json;

void Timeline::record(TimelineEvent e) { events_.push_back(std::move(e)); }

void Timeline::vm_known(const std::string& ns, const std::string& vm) { vms_[{ns, vm}]; }

void Timeline::frozen(const std::string& ns, const std::string& vm, WallTime at) {
  auto& s = vms_[{ns, vm}];
  if (s.frozen) return;
  s.frozen = true;
  s.frozen_since = at;
  s.freezes++;
}

void Timeline::thawed(const std::string& ns, const std::string& vm, WallTime at) {
  auto& s = vms_[{ns, vm}];
  if (!s.frozen) return;
  s.frozen = false;
  s.frozen_ms.push_back(std::chrono::duration<double, std::milli>(at - s.frozen_since).count());
}

void Timeline::clear() {
  events_.clear();
  for (auto& [k, s] : vms_) {
    s.frozen_ms.clear();
    s.freezes = 0;
  }
}

json::object Timeline::events_json() const {
  json::array arr;
  for (const auto& e : events_) {
    json::object o{{"time", format_rfc3339(e.time, TimePrecision::kNanos)},
                   {"type", e.type},
                   {"namespace", e.ns},
                   {"vm", e.vm}};
    if (!e.volume_snapshot.empty()) o["volumeSnapshot"] = e.volume_snapshot;
    if (!e.pvc.empty()) o["pvc"] = e.pvc;
    if (e.type == "SnapshotCut") o["frozen"] = e.frozen;
    if (!e.detail.empty()) o["detail"] = e.detail;
    arr.push_back(std::move(o));
  }
  return json::object{{"events", std::move(arr)}};
}

json::object Timeline::vms_json() const {
  json::array arr;
  for (const auto& [key, s] : vms_) {
    json::array windows;
    double max = 0;
    for (double ms : s.frozen_ms) {
      windows.push_back(ms);
      max = std::max(max, ms);
    }
    json::object o{{"namespace", key.first}, {"name", key.second}, {"frozen", s.frozen},
                   {"freezes", s.freezes},   {"frozenMs", windows},  {"maxFrozenMs", max}};
    if (s.frozen) o["frozenSince"] = format_rfc3339(s.frozen_since, TimePrecision::kNanos);
    arr.push_back(std::move(o));
  }
  return json::object{{"vms", std::move(arr)}};
}

}  // namespace kvb::testcluster
