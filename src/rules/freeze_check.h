// What a freeze/thaw command really does, and whether a freeze happened.
//
// analyze_command() reads an action's argv (or the simple command of its
// `sh -c` text) as a virt-freezer invocation: mode, --name, --namespace,
// --unfreezeTimeoutSeconds, with virt-freezer's own rules (freeze wins when
// both modes are given). freezer_verdict() decides from virt-freezer's exit
// code and its JSON log lines whether the guest was frozen: exit code 0 alone
// proves nothing ("No guest agent, exiting" and "VM domain not running ..."
// exit 0 without freezing).
#pragma once

#include "rules/model.h"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvb::rules {

struct FreezerCall {
  bool is_freezer = false;  // the command runs virt-freezer (as a simple command)
  bool freeze = false;      // the effective mode
  bool unfreeze = false;
  std::string name;
  std::string ns;
  std::optional<long> unfreeze_timeout_seconds;
  std::string problem;      // why it would fail (missing mode/name/namespace, bad flag)
};

FreezerCall analyze_command(const std::vector<std::string>& argv);

enum class FreezeEvidence { kFrozen, kThawed, kNotFrozen, kFailed, kUnknown };
std::string_view freeze_evidence_name(FreezeEvidence e);

struct FreezeVerdict {
  FreezeEvidence evidence = FreezeEvidence::kUnknown;
  std::string reason;  // from the log: "No guest agent, exiting", "Freezing VMI failed ..."
};

// `freeze`: the command was a freeze (else an unfreeze).
FreezeVerdict freezer_verdict(bool freeze, int exit_code, std::string_view stderr_text);

// kvbackup owns the guest's auto-thaw timer: a virt-freezer --freeze of the VM
// `vmi`/`ns` whose --unfreezeTimeoutSeconds is missing or shorter than
// `required` (and not 0, "never") gets `required`, so the guest cannot thaw by
// itself before its snapshots are cut. The command keeps its form: an argv
// stays an argv; `sh -c` text is rebuilt from its words, each shell-quoted.
// Returns the effective timeout (nullopt: not a freeze of this VM) and says in
// `note` what was changed.
std::optional<std::chrono::seconds> own_unfreeze_timeout(Action& action, const std::string& vmi, const std::string& ns,
                                                         std::chrono::seconds required, std::string& note);

// The "msg" fields of virt-freezer's JSON log lines, in order.
std::vector<std::string> freezer_log_messages(std::string_view stderr_text);

}  // namespace kvb::rules
