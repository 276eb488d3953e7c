// `kvbackup recover`, also run at the start of every backup: for each journal
// entry of a backup whose process is gone (its run lock is free: on a local
// location the kernel dropped the dead process's flock; on S3 its lock object
// names a process of this host that no longer runs, or has expired), thaw every VM it
// names with the freezer's verified thaw (virt-freezer --unfreeze of that VM in
// its current launcher pod, found by the VMI's uid, then KubeVirt's unfreeze
// API), give back the run's freeze leases, mark its record Failed if it was
// still InProgress, and remove the entry once every VM is confirmed thawed.
// Entries of backups still running are left alone. An entry can only ever
// cause thaws: it names VMs, never commands.
#pragma once

#include "backup/spec.h"
#include "kube/client.h"
#include "location/location.h"

#include <memory>
#include <string>
#include <vector>

namespace kvb::backup {

struct RecoveryReport {
  int entries = 0;  // stale entries found
  int vms = 0;
  int thawed = 0;
  int live = 0;     // entries of backups still running (left alone)
  std::vector<std::string> lines;
  std::vector<std::string> problems;
  bool ok() const { return problems.empty(); }
};

RecoveryReport recover(std::shared_ptr<kube::Client> client, location::Location& loc, const BackupSpec& timing = {});

}  // namespace kvb::backup
