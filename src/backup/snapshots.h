// The VolumeSnapshots of a backup: created labelled with the backup's name and
// its run's uid (record/naming.h), and followed by one watch (informer) per
// namespace on the run's uid, so that waiting for a cut (status.creationTime) or
// readyToUse costs no polling and no request per snapshot, and objects of other
// runs — leftovers of a deleted backup of the same name, or someone else's —
// are never seen, let alone counted.
//
// A planned name already taken by another run's object gets the run's short id
// appended; the create returns the name and the uid actually used.
//
// Threads: create, wait_*, get and remove may be called from any thread.
#pragma once

#include "backup/plan.h"
#include "kube/client.h"
#include "kube/watch.h"

#include <boost/json/object.hpp>

#include <map>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

namespace kvb::backup {

struct CreatedSnapshot {
  std::string name;
  std::string uid;
};

class SnapshotTracker {
 public:
  static Result<std::unique_ptr<SnapshotTracker>> start(std::shared_ptr<kube::Client> client, const std::string& backup,
                                                        const std::string& run_uid, const std::vector<std::string>& namespaces,
                                                        bool all_namespaces);
  ~SnapshotTracker();

  Result<CreatedSnapshot> create(const VmPlan& vm, const VolumePlan& vol);
  // Blocks until every named snapshot has status.creationTime, or one reports
  // status.error (error names it), or the deadline passes (kTimeout).
  Status wait_cut(const std::string& ns, const std::vector<std::string>& names, std::chrono::steady_clock::time_point deadline,
                  std::stop_token stop);
  Status wait_ready(const std::string& ns, const std::vector<std::string>& names,
                    std::chrono::steady_clock::time_point deadline, std::stop_token stop);
  std::optional<boost::json::object> get(const std::string& ns, const std::string& name);
  Status remove(const std::string& ns, const std::string& name);

 private:
  SnapshotTracker(std::shared_ptr<kube::Client> client, std::string backup, std::string run_uid)
      : client_(std::move(client)), backup_(std::move(backup)), run_uid_(std::move(run_uid)) {}
  Result<boost::json::object> post(const VmPlan& vm, const VolumePlan& vol, const std::string& name);
  kube::Informer* informer_for(const std::string& ns);
  Status wait(const std::string& ns, const std::vector<std::string>& names, std::chrono::steady_clock::time_point deadline,
              std::stop_token stop, bool ready, const char* what);

  std::shared_ptr<kube::Client> client_;
  std::string backup_;
  std::string run_uid_;
  std::map<std::string, std::shared_ptr<kube::Informer>> informers_;  // "" = cluster-wide
};

}  // namespace kvb::backup
