// Runner: one backup, start to finish (docs/backup.md).
//
//  1. recover what dead backups left frozen; load rules; inventory; plan;
//  2. write the in-progress record and the freeze journal;
//  3. per VM (bounded by --concurrency), or for all at once with
//     --consistency-group all: freeze -> create one VolumeSnapshot per volume
//     -> wait by watch until every one has status.creationTime -> thaw at once;
//     then, outside the freeze window, wait for readyToUse and save resources;
//  4. write the final record atomically; clear the journal.
//
// Safety: the thaw runs for every VM whose pre rule started, on every path:
// errors, a failed snapshot, --freeze-deadline exceeded (thaw first, then mark
// the VM failed), and stop requests (SIGINT/SIGTERM). Built-in freezes carry
// --unfreezeTimeoutSeconds as the last line of defence.
#pragma once

#include "backup/record.h"
#include "backup/spec.h"
#include "kube/client.h"
#include "location/location.h"

#include <functional>
#include <memory>
#include <stop_token>
#include <string>

namespace kvb::backup {

using ProgressFn = std::function<void(const std::string& line)>;

class Runner {
 public:
  Runner(std::shared_ptr<kube::Client> client, location::Location& location, BackupSpec spec, ProgressFn progress = {});
  // The record of the backup, also when it failed; an error only when no
  // record could be made at all (bad input found before anything happened).
  Result<BackupRecord> run(std::stop_token stop);

 private:
  struct Impl;
  std::shared_ptr<kube::Client> client_;
  location::Location& location_;
  BackupSpec spec_;
  ProgressFn progress_;
};

// Runs fn(i) for i in [0, n) on up to `workers` threads.
void parallel_for(size_t n, int workers, const std::function<void(size_t)>& fn);

}  // namespace kvb::backup
