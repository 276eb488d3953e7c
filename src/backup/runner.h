// BackupRunner: one backup, start to finish (docs/backup.md).
//
//  1. recover what dead backups left frozen; load rules; inventory; plan;
//  2. take the backup's run lock, write the journal entry (created whole, only
//     if absent) and the in-progress record (with the run's uid);
//  3. application pre rules; then per VM (backup/vm_backup.h, bounded by
//     --concurrency), or for all at once with --consistency-group all
//     (backup/group_backup.h); application post rules;
//  4. with --copy-data, copy every ready snapshot's data into the repository
//     (backup/data_copy.h): after every thaw, never inside a freeze window;
//  5. write the final record atomically; only then, and only if every thaw was
//     confirmed, remove the journal entry.
//
// Safety: the thaw runs for every VM whose pre rule started, on every path
// (errors, a failed snapshot, --freeze-deadline exceeded, stop requests), and
// is confirmed; the guest's auto-thaw timer is kvbackup's; a VM whose thaw was
// not confirmed, or a backup whose final record could not be written, leaves
// its journal entry for `kvbackup recover`.
#pragma once

#include "backup/context.h"
#include "backup/data_copy.h"
#include "backup/spec.h"
#include "kube/client.h"
#include "location/location.h"
#include "record/backup_record.h"
#include "repo/repository.h"

#include <memory>
#include <stop_token>

namespace kvb::backup {

class BackupRunner {
 public:
  // `data_repository`: where --copy-data copies to (required with it; opened
  // by the caller before anything is frozen, so a wrong password costs nothing).
  BackupRunner(std::shared_ptr<kube::Client> client, location::Location& location, BackupSpec spec, ProgressFn progress = {},
               repo::Repository* data_repository = nullptr);
  // The record of the backup, also when it failed; an error only when no
  // record could be made at all (bad input found before anything happened),
  // or when the location refused the record.
  Result<record::BackupRecord> run(std::stop_token stop);
  // Where --copy-data reports each volume's bytes (a progress board); set before run().
  void on_transfer(TransferFn fn) { transfer_ = std::move(fn); }

 private:
  std::shared_ptr<kube::Client> client_;
  location::Location& location_;
  BackupSpec spec_;
  ProgressFn progress_;
  repo::Repository* data_repository_;
  TransferFn transfer_;
};

}  // namespace kvb::backup
