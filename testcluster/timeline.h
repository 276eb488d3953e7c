// Timeline: the test cluster's oracle. It records when each guest froze and
// thawed, every snapshot cut (and whether its VM was frozen at that instant),
// and every exec, with nanosecond wall-clock times. Tests and benchmarks read
// it through GET /testcluster/v1/timeline and /testcluster/v1/vms.
#pragma once

#include "common/time.h"

#include <boost/json/object.hpp>

#include <map>
#include <string>
#include <vector>

namespace kvb::testcluster {

struct TimelineEvent {
  WallTime time;
  std::string type;  // Freeze, Thaw, AutoThaw, FreezeFailed, ThawFailed, SnapshotCut, SnapshotReady, SnapshotFailed, Exec, Paused, Unpaused
  std::string ns;
  std::string vm;
  std::string volume_snapshot;
  std::string pvc;
  bool frozen = false;  // SnapshotCut: was the VM frozen at the cut
  std::string detail;
};

struct VmFreezeStats {
  bool frozen = false;
  WallTime frozen_since{};
  std::vector<double> frozen_ms;  // completed freeze windows
  int freezes = 0;
};

class Timeline {
 public:
  void record(TimelineEvent e);
  void frozen(const std::string& ns, const std::string& vm, WallTime at);
  void thawed(const std::string& ns, const std::string& vm, WallTime at);
  void vm_known(const std::string& ns, const std::string& vm);

  boost::json::object events_json() const;
  boost::json::object vms_json() const;
  const std::vector<TimelineEvent>& events() const { return events_; }
  void clear();

 private:
  std::vector<TimelineEvent> events_;
  std::map<std::pair<std::string, std::string>, VmFreezeStats> vms_;
};

}  // namespace kvb::testcluster
