// BackupSpec: what a user asked `kvbackup backup create` for (the recorded
// options of record/options.h, with their defaults) plus the knobs of the
// freeze machinery that are not part of the record.
#pragma once

#include "kubevirt/inventory.h"
#include "record/options.h"

#include <chrono>
#include <string>

namespace kvb::backup {

using record::ConsistencyGroup;
using record::FreezeMethod;
using record::OnNoAgent;
using record::RulesMode;

struct BackupSpec : record::BackupOptions {
  std::string name;
  std::chrono::milliseconds thaw_attempt_timeout{15'000};  // one thaw command (then KubeVirt's API)
  std::chrono::milliseconds thaw_retry_budget{60'000};     // thaw rounds go on this long (an agent may come back)
  // How long after it started an abandoned freeze may still land: virt-freezer's
  // call to the launcher has a 60 s deadline (KubeVirt >= 1.8), plus a margin.
  std::chrono::milliseconds late_freeze_bound{65'000};
  // The storage's clock may differ from ours this much: a cut time outside the
  // freeze by more than this is never counted (backup/verdict.h).
  std::chrono::milliseconds clock_skew{2'000};
  // --copy-data: a range (or the size request) of a download is retried this
  // long from its first failure (an exporter restarting) before the copy fails.
  std::chrono::milliseconds data_retry_budget{60'000};

  // The guest's auto-thaw timer kvbackup sets: never shorter than the freeze
  // deadline allows, plus a margin for the thaw itself.
  std::chrono::seconds unfreeze_timeout() const;
  kubevirt::Scope inventory_scope() const;
};

}  // namespace kvb::backup
