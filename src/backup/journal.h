// The freeze journal: before a backup freezes anything it writes, in its
// location, the VMs it may freeze and how to thaw each. The entry is removed
// when every VM is thawed. A running backup holds an advisory lock on it, so
// `kvbackup recover` (and the start of every backup) can tell a live backup's
// entry from one left by a process that died, and thaws only the latter.
#pragma once

#include "common/error.h"
#include "common/time.h"
#include "kube/client.h"
#include "location/location.h"

#include <memory>
#include <string>
#include <vector>

namespace kvb::backup {

struct JournalVm {
  std::string ns;
  std::string name;
  std::string method;  // exec or subresource
  std::string pod;
  std::string container;
  std::vector<std::string> thaw_command;
};

struct JournalEntry {
  std::string backup;
  int pid = 0;
  std::string host;
  WallTime started{};
  std::vector<JournalVm> vms;
};

class Journal {
 public:
  // Writes the entry and takes its lock; fails if the location is not local.
  static Result<std::unique_ptr<Journal>> begin(location::Location& loc, JournalEntry entry);
  ~Journal();
  Status finish();  // every VM is thawed: remove the entry and release the lock

 private:
  Journal(location::Location& loc, std::string backup, int fd) : loc_(loc), backup_(std::move(backup)), lock_fd_(fd) {}
  location::Location& loc_;
  std::string backup_;
  int lock_fd_;
  bool finished_ = false;
};

struct RecoveryReport {
  int entries = 0;       // stale entries found
  int vms = 0;
  int thawed = 0;
  int live = 0;          // entries of backups still running (left alone)
  std::vector<std::string> lines;
  std::vector<std::string> problems;
  bool ok() const { return problems.empty(); }
};

// Thaws the VMs of every stale journal entry and removes the entries it fully recovered.
RecoveryReport recover(std::shared_ptr<kube::Client> client, location::Location& loc);

}  // namespace kvb::backup
