// The rule model: every source of freeze/thaw commands (Stork Rule files and
// cluster objects, kvbackup BackupRule files, Velero hook annotations, the
// built-in VM rules) is turned into this one model.
//
// A Rule has items; an item selects pods (labels), names a container and has
// actions; an action runs a command: Stork-style as `sh -c <value>`, or
// Velero-style as an argv vector without a shell.
#pragma once

#include "kube/selector.h"

#include <boost/json/value.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace kvb::rules {

enum class OnError { kFail, kContinue };
enum class RuleSource { kStorkFile, kBackupRuleFile, kStorkCluster, kVeleroAnnotation, kBuiltin };
std::string_view rule_source_name(RuleSource s);

inline constexpr std::chrono::milliseconds kDefaultActionTimeout{60'000};

struct Action {
  std::string type = "command";
  std::string value;               // shell text (Stork): runs as sh -c value
  std::vector<std::string> argv;   // when non-empty: runs as this argv, no shell (Velero, built-in)
  bool background = false;         // holds until released; needs ${WAIT_CMD}
  bool run_in_single_pod = false;  // only on the first matching pod
  std::chrono::milliseconds timeout = kDefaultActionTimeout;
  OnError on_error = OnError::kFail;

  // The argv that is executed: argv, or {"sh", "-c", value}.
  std::vector<std::string> command() const;
  // For messages: the argv joined by spaces, or the shell text.
  std::string display() const;
};

struct RuleItem {
  kube::LabelSelector pod_selector;
  // When set, the item targets exactly this pod (built-in and Velero rules know
  // the pod); the selector is then only what is shown to users.
  std::string pod_namespace;
  std::string pod_name;
  std::string container;  // empty: the pod's only container (an error for multi-container pods)
  std::vector<Action> actions;
  std::string origin;     // "file.yaml doc 1 rules[0]" for messages
};

struct Rule {
  std::string name;
  std::string ns;          // the namespace the rule applies to; empty: every namespace in scope
  RuleSource source = RuleSource::kStorkFile;
  std::string origin;      // file path and document index, or "cluster rule prod/presnap"
  std::vector<RuleItem> items;
  bool is_template = false;  // uses <vm-name>/{{vm.name}}: expand per VM before use
  boost::json::value document;  // the source document, for template expansion
};

}  // namespace kvb::rules
