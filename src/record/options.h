// What a user asked `kvbackup backup create` for, as it is recorded, with the
// one home of every default (the CLI, the runner and the record all read them
// from here). Each enum has to_string/parse beside it; parse errors name the
// accepted values.
#pragma once

#include "common/error.h"

#include <boost/json/object.hpp>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvb {
class DocReader;
}

namespace kvb::record {

enum class RulesMode { kBuiltin, kCustom };
enum class FreezeMethod { kExec, kSubresource };
enum class OnNoAgent { kCrashConsistent, kSkip, kFail };
enum class ConsistencyGroup { kNone, kAll };

std::string_view to_string(RulesMode m);
std::string_view to_string(FreezeMethod m);
std::string_view to_string(OnNoAgent m);
std::string_view to_string(ConsistencyGroup m);
// `what` names the flag or field in the error ("--on-no-agent").
Result<RulesMode> parse_rules_mode(std::string_view s, std::string_view what);
Result<FreezeMethod> parse_freeze_method(std::string_view s, std::string_view what);
Result<OnNoAgent> parse_on_no_agent(std::string_view s, std::string_view what);
Result<ConsistencyGroup> parse_consistency_group(std::string_view s, std::string_view what);

struct BackupScope {
  std::vector<std::string> namespaces;  // empty with all_namespaces=false: the client's default namespace
  bool all_namespaces = false;
  std::vector<std::string> vms;         // empty: every VM
  std::string selector;                 // label selector on VMs
};

struct BackupOptions {
  BackupScope scope;
  RulesMode rules = RulesMode::kBuiltin;
  std::string pre_rule;   // FILE or NAME (custom rules)
  std::string post_rule;
  FreezeMethod freeze_method = FreezeMethod::kExec;
  OnNoAgent on_no_agent = OnNoAgent::kCrashConsistent;
  int concurrency = 10;
  std::chrono::milliseconds freeze_deadline{30'000};  // from frozen to every snapshot cut
  std::chrono::milliseconds ready_timeout{600'000};   // from cut to readyToUse
  std::chrono::milliseconds freeze_wait{120'000};     // longest wait for another backup's freeze of a VM to end
  ConsistencyGroup consistency_group = ConsistencyGroup::kNone;
  std::string snapshot_class;                              // one class for every volume
  std::map<std::string, std::string> snapshot_class_map;  // storage class -> snapshot class
  bool copy_data = false;     // copy every snapshot's data into <location>/repository after the thaw
  int data_concurrency = 2;   // volumes copied at once (each over several connections)

  boost::json::object scope_json() const;
  boost::json::object options_json() const;
  // Reads what scope_json/options_json wrote; absent fields keep their defaults.
  static Result<BackupOptions> from_json(DocReader& scope, DocReader& options);
};

}  // namespace kvb::record
