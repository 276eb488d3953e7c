// What the VMs of one backup share while it runs: the cluster, the location,
// the spec, the run's uid, the snapshot tracker, the freezer, the freeze
// leases, the freeze gate, object caches and the progress line. Built by the runner; every
// member may be used from the worker threads at once (each is thread-safe).
#pragma once

#include "backup/freeze_gate.h"
#include "backup/freeze_lease.h"
#include "backup/freezer.h"
#include "backup/resources.h"
#include "backup/snapshots.h"
#include "backup/spec.h"
#include "kube/client.h"
#include "location/location.h"

#include <functional>
#include <memory>
#include <string>

namespace kvb::backup {

using ProgressFn = std::function<void(const std::string& line)>;

struct BackupContext {
  std::shared_ptr<kube::Client> client;
  location::Location& loc;
  const BackupSpec& spec;
  std::string run_uid;
  SnapshotTracker& tracker;
  Freezer& freezer;
  FreezeLeases& leases;
  ObjectLookup cached;                               // DataVolumes listed once, snapshots from the watch
  std::function<void(const std::string&)> say;      // one progress line (thread-safe)
  // Ok while this run still holds its run lock (the journal's): once it is
  // lost, another kvbackup may be running recover on this backup, so no VM
  // is frozen under it any more. Empty: always held (tests).
  std::function<Status()> run_lock_held;
  // The priority lane for work inside freeze windows (backup/freeze_gate.h);
  // null: none. A consistency group opens no window scopes (it freezes every
  // VM at once), so it never waits at the gate.
  FreezeGate* gate = nullptr;
};

}  // namespace kvb::backup
