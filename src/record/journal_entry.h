// The freeze journal entry: written to journal/<backup>.json before a backup
// freezes anything, removed only once every VM it froze is confirmed thawed and
// its final record is written. It names VMs, never commands: `kvbackup
// recover` can only thaw what an entry names (virt-freezer --unfreeze of that
// VM in that VM's own launcher pod, or KubeVirt's unfreeze API), so a planted
// entry cannot run anything else.
#pragma once

#include "common/error.h"
#include "common/time.h"
#include "record/options.h"

#include <boost/json/object.hpp>

#include <string>
#include <vector>

namespace kvb::record {

struct JournalVm {
  std::string ns;
  std::string name;
  FreezeMethod method = FreezeMethod::kExec;  // how it is thawed
};

struct JournalEntry {
  std::string backup;
  std::string uid;   // the run's uid (as in its record)
  int pid = 0;
  std::string host;
  WallTime started{};
  std::vector<JournalVm> vms;
  // Namespaces where --copy-data makes temporary claims, exports and token
  // Secrets (labelled with the run's uid): recover deletes what is left there.
  std::vector<std::string> copy_namespaces;

  boost::json::object to_json() const;
  static Result<JournalEntry> from_json(const boost::json::value& v, const std::string& origin);
};

}  // namespace kvb::record
