// The freeze journal of a running backup (format: record/journal_entry.h):
// journal/<backup>.json in the location, written before the first freeze,
// removed only when the backup's final record is written and every VM it
// froze is confirmed thawed. While the backup runs it holds an exclusive
// advisory lock on journal/<backup>.lock, so `kvbackup recover` (and the start
// of every backup, and `backup delete`) can tell a live backup's entry from one
// left by a process that died, and only touch the latter.
//
// Threads: one Journal is used by the thread that runs the backup.
#pragma once

#include "common/error.h"
#include "location/location.h"
#include "record/journal_entry.h"

#include <memory>
#include <string>

namespace kvb::backup {

class Journal {
 public:
  // Takes the lock and writes the entry; fails if the location is not local.
  static Result<std::unique_ptr<Journal>> begin(location::Location& loc, const record::JournalEntry& entry);
  ~Journal();       // an unfinished entry stays for recover; the lock is released with the process
  Status finish();  // removes the entry and the lock file

 private:
  Journal(location::Location& loc, std::string backup, int fd) : loc_(loc), backup_(std::move(backup)), lock_fd_(fd) {}
  location::Location& loc_;
  std::string backup_;
  int lock_fd_;
  bool finished_ = false;
};

// Takes the lock of `backup`'s journal entry if no live process holds it: the
// descriptor (close it to release), or kConflict naming the running backup.
Result<int> lock_journal(location::Location& loc, const std::string& backup);
// True while a live kvbackup process runs `backup` (its journal lock is held).
bool backup_running(location::Location& loc, const std::string& backup);
// Removes an entry and its lock file (after recovery).
Status remove_journal_entry(location::Location& loc, const std::string& backup);

}  // namespace kvb::backup
