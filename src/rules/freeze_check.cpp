#include "rules/freeze_check.h"

#include "common/shell.h"

#include <boost/json.hpp>

namespace kvb::rules {
namespace json = boost::json;

std::string_view freeze_evidence_name(FreezeEvidence e) {
  switch (e) {
    case FreezeEvidence::kFrozen: return "frozen";
    case FreezeEvidence::kThawed: return "thawed";
    case FreezeEvidence::kNotFrozen: return "not frozen";
    case FreezeEvidence::kFailed: return "failed";
    case FreezeEvidence::kUnknown: return "unknown";
  }
  return "unknown";
}

FreezerCall analyze_command(const std::vector<std::string>& cmd) {
  FreezerCall c;
  if (cmd.empty()) return c;
  std::vector<std::string> argv = cmd;
  auto base = [](const std::string& p) { return p.substr(p.rfind('/') == std::string::npos ? 0 : p.rfind('/') + 1); };
  std::string prog = base(cmd[0]);
  if ((prog == "sh" || prog == "bash") && cmd.size() >= 3 && cmd[1] == "-c") {
    auto words = split_shell_words(cmd[2]);
    if (!words || !words->simple || words->words.empty()) return c;
    argv = words->words;
  }
  if (base(argv[0]) != "virt-freezer") return c;
  c.is_freezer = true;
  for (size_t i = 1; i < argv.size(); ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0 && a.rfind("-", 0) == 0) a = "-" + a;
    if (a.rfind("--", 0) != 0) continue;
    std::string flag = a.substr(2), value;
    bool has_value = false;
    if (auto eq = flag.find('='); eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      has_value = true;
    }
    auto take = [&] {
      if (has_value) return true;
      if (i + 1 >= argv.size()) return false;
      value = argv[++i];
      return true;
    };
    if (flag == "freeze") c.freeze = !has_value || value == "true" || value == "1";
    else if (flag == "unfreeze") c.unfreeze = !has_value || value == "true" || value == "1";
    else if (flag == "name") {
      if (!take()) c.problem = "--name needs a value";
      else c.name = value;
    } else if (flag == "namespace") {
      if (!take()) c.problem = "--namespace needs a value";
      else c.ns = value;
    } else if (flag == "unfreezeTimeoutSeconds") {
      if (!take()) c.problem = "--unfreezeTimeoutSeconds needs a value";
      else {
        try {
          c.unfreeze_timeout_seconds = std::stol(value);
        } catch (const std::exception&) {
          c.problem = "--unfreezeTimeoutSeconds \"" + value + "\" is not a number";
        }
      }
    } else {
      c.problem = "unknown flag --" + flag;
    }
  }
  if (c.freeze) c.unfreeze = false;  // freeze wins
  if (c.problem.empty() && !c.freeze && !c.unfreeze) c.problem = "neither --freeze nor --unfreeze is set";
  if (c.problem.empty() && (c.name.empty() || c.ns.empty())) c.problem = "both --name and --namespace must be given";
  return c;
}

std::vector<std::string> freezer_log_messages(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    std::string_view line = text.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    boost::system::error_code ec;
    json::value v = json::parse(line, ec);
    if (!ec && v.is_object()) {
      if (auto* m = v.as_object().if_contains("msg"); m && m->is_string()) out.emplace_back(m->as_string());
    }
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  return out;
}

FreezeVerdict freezer_verdict(bool freeze, int exit_code, std::string_view stderr_text) {
  auto msgs = freezer_log_messages(stderr_text);
  auto has = [&](std::string_view needle) {
    for (const auto& m : msgs)
      if (m.find(needle) != std::string::npos) return true;
    return stderr_text.find(needle) != std::string_view::npos;
  };
  FreezeVerdict v;
  if (exit_code != 0) {
    v.evidence = FreezeEvidence::kFailed;
    for (auto it = msgs.rbegin(); it != msgs.rend(); ++it) {
      if (!it->empty()) {
        v.reason = *it;
        break;
      }
    }
    if (v.reason.empty()) v.reason = "virt-freezer exited with code " + std::to_string(exit_code);
    return v;
  }
  if (has("No guest agent, exiting")) return {FreezeEvidence::kNotFrozen, "no guest agent (virt-freezer: \"No guest agent, exiting\")"};
  if (has("VM domain not running")) {
    return {FreezeEvidence::kNotFrozen, "VM domain not running (virt-freezer: \"VM domain not running, no need to freeze/unfreeze\")"};
  }
  if (has("VM Paused")) return {FreezeEvidence::kNotFrozen, "VM paused (virt-freezer did not freeze it)"};
  if (has("Operation completed successfully")) {
    return {freeze ? FreezeEvidence::kFrozen : FreezeEvidence::kThawed, "virt-freezer: \"Operation completed successfully\""};
  }
  return {FreezeEvidence::kUnknown, "virt-freezer exited 0 without saying it completed the operation"};
}

std::optional<std::chrono::seconds> own_unfreeze_timeout(Action& action, const std::string& vmi, const std::string& ns,
                                                         std::chrono::seconds required, std::string& note) {
  auto call = analyze_command(action.command());
  if (!call.is_freezer || !call.freeze || !call.problem.empty() || call.name != vmi || call.ns != ns) return std::nullopt;
  if (call.unfreeze_timeout_seconds && (*call.unfreeze_timeout_seconds == 0 || *call.unfreeze_timeout_seconds >= required.count())) {
    return std::chrono::seconds(*call.unfreeze_timeout_seconds);
  }
  // The words of the command, without any --unfreezeTimeoutSeconds, then kvbackup's.
  std::vector<std::string> words = action.argv;
  if (words.empty()) {
    auto split = split_shell_words(action.value);
    if (!split || !split->simple) return std::nullopt;  // analyze_command said simple; defensive
    words = split->words;
  }
  std::vector<std::string> kept;
  for (size_t i = 0; i < words.size(); ++i) {
    std::string w = words[i];
    std::string flag = w.rfind("--", 0) == 0 ? w.substr(2) : w.rfind("-", 0) == 0 ? w.substr(1) : std::string();
    if (flag == "unfreezeTimeoutSeconds") {
      ++i;  // and its value
      continue;
    }
    if (flag.rfind("unfreezeTimeoutSeconds=", 0) == 0) continue;
    kept.push_back(w);
  }
  kept.push_back("--unfreezeTimeoutSeconds=" + std::to_string(required.count()));
  note = call.unfreeze_timeout_seconds
             ? "--unfreezeTimeoutSeconds " + std::to_string(*call.unfreeze_timeout_seconds) + " would let the guest thaw itself before its cut; kvbackup raised it to " +
                   std::to_string(required.count()) + " (--freeze-deadline plus a margin)"
             : "";
  if (!action.argv.empty()) {
    action.argv = kept;
  } else {
    std::string text;
    for (const auto& w : kept) text += (text.empty() ? "" : " ") + shell_quote(w);
    action.value = text;
  }
  return required;
}

}  // namespace kvb::rules
