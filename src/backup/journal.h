// The freeze journal of a running backup (format: record/journal_entry.h):
// journal/<backup>.json in the location, written before the first freeze,
// removed only when the backup's final record is written and every VM it
// froze is confirmed thawed. While the backup runs it holds the run lock
// journal/<backup>.lock (Location::lock_path: flock on a local file, lock
// objects with a holder and an expiry on S3), so that `kvbackup recover` (and
// the start of every backup, and `backup delete`) can tell a live backup's
// entry from one left by a process that died, and only touch the latter.
//
// Order (docs/backup.md, "The freeze journal"): run lock, then the entry,
// created whole and only if absent (Location::create), then the first
// freeze. A backup that cannot take the lock or write the entry freezes
// nothing; an entry that is already there (an earlier run of the same name
// whose VMs recover could not confirm thawed) is never overwritten.
//
// The same code serves every kind of location: nothing here knows whether
// the location is a directory or a bucket.
//
// Threads: one Journal is used by the thread that runs the backup.
#pragma once

#include "common/error.h"
#include "location/location.h"
#include "record/journal_entry.h"

#include <chrono>
#include <memory>
#include <string>

namespace kvb::backup {

class Journal {
 public:
  // Writes the entry under `lock` (from lock_journal); an entry that exists is kAlreadyExists.
  static Result<std::unique_ptr<Journal>> begin(location::Location& loc, std::unique_ptr<location::Lock> lock,
                                                const record::JournalEntry& entry);
  ~Journal() = default;  // an unfinished entry stays for recover; the lock goes with us
  Status finish();       // removes the entry, then releases the lock
  // Ok while the run lock is still ours (see Lock::still_held).
  Status still_held() const { return lock_ ? lock_->still_held() : ok(); }

 private:
  Journal(location::Location& loc, std::string backup, std::unique_ptr<location::Lock> lock)
      : loc_(loc), backup_(std::move(backup)), lock_(std::move(lock)) {}
  location::Location& loc_;
  std::string backup_;
  std::unique_ptr<location::Lock> lock_;
};

// Takes the run lock of `backup` if no live process holds it, retrying
// contention for up to `wait`: the lock, or kConflict naming the running
// backup and its holder.
Result<std::unique_ptr<location::Lock>> lock_journal(location::Location& loc, const std::string& backup,
                                                     std::chrono::milliseconds wait = {});
// True while a live kvbackup process runs `backup` (its run lock is held).
bool backup_running(location::Location& loc, const std::string& backup);
// Removes an entry (after recovery; its run lock must be held).
Status remove_journal_entry(location::Location& loc, const std::string& backup);

}  // namespace kvb::backup
