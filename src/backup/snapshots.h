// The VolumeSnapshots of a backup: created labelled kvbackup.io/backup=<name>,
// and followed by one watch (informer) per namespace, so that waiting for a
// cut (status.creationTime) or readyToUse costs no polling and no request per
// snapshot.
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

inline constexpr const char* kBackupLabel = "kvbackup.io/backup";
inline constexpr const char* kVmLabel = "kvbackup.io/vm";

class SnapshotTracker {
 public:
  static Result<std::unique_ptr<SnapshotTracker>> start(std::shared_ptr<kube::Client> client, const std::string& backup,
                                                        const std::vector<std::string>& namespaces, bool all_namespaces);
  ~SnapshotTracker();

  Status create(const std::string& backup, const VmPlan& vm, const VolumePlan& vol);
  // Blocks until every named snapshot has status.creationTime, or one reports
  // status.error (error names it), or the deadline passes (kTimeout).
  Status wait_cut(const std::string& ns, const std::vector<std::string>& names, std::chrono::steady_clock::time_point deadline,
                  std::stop_token stop);
  Status wait_ready(const std::string& ns, const std::vector<std::string>& names,
                    std::chrono::steady_clock::time_point deadline, std::stop_token stop);
  std::optional<boost::json::object> get(const std::string& ns, const std::string& name);
  Status remove(const std::string& ns, const std::string& name);

 private:
  SnapshotTracker(std::shared_ptr<kube::Client> client) : client_(std::move(client)) {}
  kube::Informer* informer_for(const std::string& ns);
  Status wait(const std::string& ns, const std::vector<std::string>& names, std::chrono::steady_clock::time_point deadline,
              std::stop_token stop, bool ready, const char* what);

  std::shared_ptr<kube::Client> client_;
  std::map<std::string, std::shared_ptr<kube::Informer>> informers_;  // "" = cluster-wide
};

}  // namespace kvb::backup
