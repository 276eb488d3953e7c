// Reading rules from documents: Stork `stork.libopenstorage.org/v1alpha1 Rule`
// verbatim and kvbackup's `kvbackup.io/v1alpha1 BackupRule` (same shape), from
// YAML or JSON files holding one or more documents (or a `kind: List`), and
// from Rule objects read off the cluster.
//
// Both kinds accept kvbackup's extensions: per-action `timeout` (default 60s)
// and `onError: Fail|Continue` (default Fail), and a full LabelSelector
// (matchLabels/matchExpressions) as `podSelector`. Parsing is strict: an
// unknown field, an action type other than `command`, an empty selector or
// value, or a background action in a post rule is an error naming the file,
// the document index and the field.
#pragma once

#include "common/error.h"
#include "rules/model.h"

#include <boost/json/value.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace kvb::rules {

enum class Phase { kPre, kPost };
std::string_view phase_name(Phase p);

// Parses every Rule/BackupRule document of a text. `origin` names the file.
Result<std::vector<Rule>> parse_rule_documents(const std::string& text, const std::string& origin, Phase phase);
Result<std::vector<Rule>> load_rule_file(const std::filesystem::path& file, Phase phase);
// One Rule object as the API serves it (a cluster Rule).
Result<Rule> parse_rule_object(const boost::json::value& obj, const std::string& origin, Phase phase,
                               RuleSource source);

// Checks a rule for the phase it is used in (background actions only in pre rules).
Status validate_for_phase(const Rule& rule, Phase phase);

}  // namespace kvb::rules
