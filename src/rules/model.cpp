#include "rules/model.h"

namespace kvb::rules {

std::string_view rule_source_name(RuleSource s) {
  switch (s) {
    case RuleSource::kStorkFile: return "stork-file";
    case RuleSource::kBackupRuleFile: return "backuprule-file";
    case RuleSource::kStorkCluster: return "stork-cluster";
    case RuleSource::kVeleroAnnotation: return "velero-annotation";
    case RuleSource::kBuiltin: return "builtin";
  }
  return "?";
}

std::vector<std::string> Action::command() const {
  if (!argv.empty()) return argv;
  return {"sh", "-c", value};
}

std::string Action::display() const {
  if (argv.empty()) return value;
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

}  // namespace kvb::rules
