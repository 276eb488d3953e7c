// Interrupted restores, for `kvbackup recover`: a restore record still
// InProgress whose lock no live process holds was cut short (kill -9, a lost
// machine). Each unfinished VM is settled by its stage (restore/record.h):
// before kReplacing nothing of the user's was touched, so what the restore
// created is removed (rolled back); from kReplacing on, the VM in the way may
// already be gone and only the restore can bring it back, so the restore is
// completed (restore/runner.h resume). The record then says what happened.
#pragma once

#include "kube/client.h"
#include "location/location.h"

#include <memory>
#include <string>
#include <vector>

namespace kvb::restore {

struct RestoreRecovery {
  int interrupted = 0;  // restores found cut short
  int completed = 0;    // VMs whose restore was completed
  int rolled_back = 0;  // VMs whose half-made objects were removed
  std::vector<std::string> lines;
  std::vector<std::string> problems;
};

RestoreRecovery recover_restores(std::shared_ptr<kube::Client> client, location::Location& loc);

}  // namespace kvb::restore
