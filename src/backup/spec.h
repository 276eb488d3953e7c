// BackupSpec: what a user asked `kvbackup backup create` to do.
#pragma once

#include "common/error.h"
#include "kubevirt/inventory.h"

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace kvb::backup {

enum class RulesMode { kBuiltin, kCustom };
enum class FreezeMethod { kExec, kSubresource };
enum class OnNoAgent { kCrashConsistent, kSkip, kFail };
enum class ConsistencyGroup { kNone, kAll };

struct BackupSpec {
  std::string name;
  kubevirt::Scope scope;
  RulesMode rules = RulesMode::kBuiltin;
  std::string pre_rule;   // FILE or NAME (custom rules)
  std::string post_rule;
  FreezeMethod freeze_method = FreezeMethod::kExec;
  OnNoAgent on_no_agent = OnNoAgent::kCrashConsistent;
  int concurrency = 10;
  std::chrono::milliseconds freeze_deadline{30'000};  // from frozen to every snapshot cut
  std::chrono::milliseconds ready_timeout{600'000};   // from cut to readyToUse
  std::chrono::milliseconds thaw_attempt_timeout{15'000};  // one thaw command (then KubeVirt's API)
  std::chrono::milliseconds thaw_retry_budget{60'000};     // thaw rounds go on this long (an agent may come back)
  ConsistencyGroup consistency_group = ConsistencyGroup::kNone;
  std::string snapshot_class;                        // one class for every volume
  std::map<std::string, std::string> snapshot_class_map;  // storage class -> snapshot class
  bool wait = true;  // wait for readyToUse (always true today: resources record restoreSize)
};

// Backup names become parts of object names and labels: DNS-1123 labels.
Status validate_backup_name(const std::string& name);

}  // namespace kvb::backup
