// Freeze leases: at most one kvbackup process freezes a given VM at a time.
//
// Two backups of one VM at once (say, under different names) would otherwise
// interleave: the first one's thaw lands between the second one's freeze and
// its cut, and both call the VM file-system consistent. Before freezing, a
// backup takes a coordination.k8s.io/v1 Lease "kvbackup-freeze-<vm>" in the
// VM's namespace (holderIdentity "<backup>/<run uid>@<host>/<pid>"), and gives
// it back only once the VM's thaw is confirmed. Another backup waits for it (up
// to --freeze-wait, then the VM fails and says who holds it). A lease whose
// renewTime + leaseDurationSeconds has passed is taken over with a
// resourceVersion precondition, so two waiters cannot both win it; a release
// deletes it with a precondition on the resourceVersion it wrote, so it never
// removes a lease that was taken over. The duration covers the longest a freeze can be held, so no renewal is
// needed; `kvbackup recover` releases the leases of backups that died.
//
// Threads: any thread may call; calls for different VMs run concurrently.
#pragma once

#include "common/error.h"
#include "kube/client.h"

#include <chrono>
#include <memory>
#include <stop_token>
#include <string>

namespace kvb::backup {

struct HeldLease {
  std::string ns;
  std::string name;
  std::string resource_version;  // ours until someone takes the lease over
  std::string waited_for;   // the holder this backup waited for, if it did
  double waited_ms = 0;
  std::string describe() const;  // "lease prod/kvbackup-freeze-db (waited 1200 ms for nightly/...)"
};

class FreezeLeases {
 public:
  FreezeLeases(std::shared_ptr<kube::Client> client, std::string holder, std::chrono::seconds duration);

  // Takes the VM's lease, waiting up to `wait` for its holder to give it back.
  Result<HeldLease> acquire(const std::string& ns, const std::string& vm, std::chrono::milliseconds wait, std::stop_token stop);
  // Gives it back (only if it is still ours).
  Status release(const HeldLease& lease);

  const std::string& holder() const { return holder_; }

 private:
  std::shared_ptr<kube::Client> client_;
  std::string holder_;
  std::chrono::seconds duration_;
};

// "<backup>/<run uid>@<host>/<pid>"
std::string lease_holder(const std::string& backup, const std::string& run_uid);
// Releases the VM's lease if its holder is the run `run_uid` (recover: the run died).
Status release_lease_of_run(kube::Client& client, const std::string& ns, const std::string& vm, const std::string& run_uid);

}  // namespace kvb::backup
