#include "rules/parse.h"

#include "common/atomic_file.h"
#include "common/bounded_read.h"
#include "common/doc_reader.h"
#include "common/yaml_json.h"
#include "rules/templates.h"

#include <boost/json.hpp>

namespace kvb::rules {
namespace json = boost::json;

std::string_view phase_name(Phase p) { return p == Phase::kPre ? "pre" : "post"; }

namespace {

constexpr std::string_view kStorkApi = "stork.libopenstorage.org/v1alpha1";
constexpr std::string_view kKvbackupApi = "kvbackup.io/v1alpha1";

bool contains_markers(const json::value& v) {
  if (v.is_string()) return has_template_markers(v.as_string());
  if (v.is_array()) {
    for (const auto& x : v.as_array())
      if (contains_markers(x)) return true;
  }
  if (v.is_object()) {
    for (const auto& [k, x] : v.as_object())
      if (has_template_markers(k) || contains_markers(x)) return true;
  }
  return false;
}

Result<kube::LabelSelector> read_selector(DocReader& item) {
  const json::value* raw = item.raw("podSelector");
  if (!raw) return item.error("podSelector", "is required (an empty selector would match every pod in the namespace)");
  if (!raw->is_object()) return item.error("podSelector", "must be a mapping of labels, or a LabelSelector");
  const auto& o = raw->as_object();
  kube::LabelSelector sel;
  if (o.contains("matchLabels") || o.contains("matchExpressions")) {
    auto s = kube::LabelSelector::from_json(*raw, item.origin() + ": " + item.path() + ".podSelector");
    if (!s) return s.error();
    sel = *s;
  } else {
    // Stork's podSelector: a plain map of labels, matched exactly.
    for (const auto& [k, v] : o) {
      std::string key(k);
      if (!v.is_string()) {
        return item.error("podSelector." + key, "must be a string label value (got " + describe_json_value(v) + ")");
      }
      if (auto st = kube::validate_label_key(key); !st) return item.error("podSelector", st.error().message);
      if (auto st = kube::validate_label_value(v.as_string()); !st) {
        return item.error("podSelector." + key, st.error().message);
      }
      sel.add({key, kube::LabelRequirement::Op::kEquals, {std::string(v.as_string())}});
    }
  }
  if (sel.empty()) return item.error("podSelector", "is empty: it would match every pod in the namespace");
  return sel;
}

Result<Action> read_action(DocReader& a, Phase phase) {
  Action act;
  KVB_TRY(act.type, a.str("type", "command"));
  if (act.type != "command") {
    return a.error("type", "unknown action type \"" + act.type + "\" (the only type is command)");
  }
  KVB_TRY(act.value, a.str("value"));
  if (act.value.find_first_not_of(" \t\n") == std::string::npos) return a.error("value", "is required: the command to run");
  KVB_TRY(act.background, a.boolean("background", false));
  KVB_TRY(act.run_in_single_pod, a.boolean("runInSinglePod", false));
  KVB_TRY(auto timeout, a.duration("timeout", kDefaultActionTimeout));
  if (timeout.count() <= 0) return a.error("timeout", "must be greater than zero");
  act.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
  KVB_TRY(auto on_error, a.str("onError", "Fail"));
  if (on_error == "Fail") act.on_error = OnError::kFail;
  else if (on_error == "Continue") act.on_error = OnError::kContinue;
  else return a.error("onError", "\"" + on_error + "\" is not Fail or Continue");
  KVB_CHECK(a.finish());
  if (act.background && phase == Phase::kPost) {
    return a.error("background", "background actions are only allowed in pre-exec rules, not in a post-exec rule");
  }
  if (act.background && act.value.find("${WAIT_CMD}") == std::string::npos) {
    return a.error("value", "a background action must contain ${WAIT_CMD} (where the command waits to be released)");
  }
  return act;
}

Result<Rule> parse_document(const json::value& doc, const std::string& where, Phase phase, RuleSource source) {
  DocReader r(doc, where, "");
  if (!doc.is_object()) return r.error_here("a rule document must be a mapping (got " + describe_json_value(doc) + ")");
  KVB_TRY(auto api, r.str("apiVersion"));
  KVB_TRY(auto kind, r.str("kind"));
  Rule rule;
  rule.source = source;
  if (api == kStorkApi && kind == "Rule") {
    if (source == RuleSource::kBackupRuleFile) rule.source = RuleSource::kStorkFile;
  } else if (api == kKvbackupApi && kind == "BackupRule") {
    rule.source = RuleSource::kBackupRuleFile;
  } else {
    return r.error("kind", "\"" + api + " " + kind + "\" is not a rule (expected " + std::string(kStorkApi) +
                               " Rule or " + std::string(kKvbackupApi) + " BackupRule)");
  }
  KVB_TRY(auto meta, r.object("metadata"));
  KVB_TRY(rule.name, meta.str("name"));
  KVB_TRY(rule.ns, meta.str("namespace"));
  // Server-set metadata is fine on objects read back from a cluster.
  for (const char* k : {"uid", "resourceVersion", "creationTimestamp", "generation", "labels", "annotations",
                        "managedFields", "selfLink", "generateName", "ownerReferences", "finalizers"}) {
    (void)meta.raw(k);
  }
  KVB_CHECK(meta.finish());
  KVB_TRY(auto items, r.list("rules"));
  KVB_CHECK(r.finish());
  if (items.empty()) return r.error("rules", "is required: a list of {podSelector, container, actions}");
  rule.origin = where + (rule.name.empty() ? "" : " (" + std::string(kind) + " " + rule.name + ")");
  if (contains_markers(doc)) {
    // A template is checked now, expanded for a sample VM, so that its errors
    // show when it is loaded rather than in the middle of a backup.
    json::value sample = expand_template_document(doc, TemplateVm{"sample-vm", "sample-namespace"});
    KVB_TRY(Rule checked, parse_document(sample, where, phase, source));
    checked.is_template = true;
    checked.document = doc;
    checked.name = rule.name;
    checked.origin = rule.origin;
    return checked;
  }
  for (auto& it : items) {
    RuleItem item;
    item.origin = where + " " + it.path();
    KVB_TRY(item.pod_selector, read_selector(it));
    KVB_TRY(item.container, it.str("container"));
    KVB_TRY(auto actions, it.list("actions"));
    KVB_CHECK(it.finish());
    if (actions.empty()) return it.error("actions", "is required: at least one action");
    for (auto& a : actions) {
      KVB_TRY(auto act, read_action(a, phase));
      item.actions.push_back(std::move(act));
    }
    rule.items.push_back(std::move(item));
  }
  return rule;
}

}  // namespace

Result<Rule> expand_rule(const Rule& tmpl, const TemplateVm& vm, Phase phase) {
  if (!tmpl.is_template) return tmpl;
  json::value doc = expand_template_document(tmpl.document, vm);
  KVB_TRY(Rule rule, parse_document(doc, tmpl.origin + " for VM " + vm.ns + "/" + vm.name, phase, tmpl.source));
  rule.origin = tmpl.origin + " for VM " + vm.ns + "/" + vm.name;
  return rule;
}

Result<Rule> parse_rule_object(const json::value& obj, const std::string& origin, Phase phase, RuleSource source) {
  return parse_document(obj, origin, phase, source);
}

Result<std::vector<Rule>> parse_rule_documents(const std::string& text, const std::string& origin, Phase phase) {
  KVB_TRY(auto docs, parse_yaml_documents(text, origin));
  std::vector<Rule> out;
  for (size_t i = 0; i < docs.size(); ++i) {
    const json::value& d = docs[i];
    if (d.is_null()) continue;  // an empty document between "---"
    std::string where = origin + ": document " + std::to_string(i + 1);
    if (d.is_object() && d.as_object().contains("items") && d.as_object().contains("kind") &&
        d.as_object().at("kind") == "List") {
      const json::value& items = d.as_object().at("items");
      if (!items.is_array()) return Error(Errc::kInvalidArgument, where + ": items: must be a list");
      size_t j = 0;
      for (const auto& item : items.as_array()) {
        KVB_TRY(auto rule, parse_document(item, where + " items[" + std::to_string(j++) + "]", phase, RuleSource::kStorkFile));
        out.push_back(std::move(rule));
      }
      continue;
    }
    KVB_TRY(auto rule, parse_document(d, where, phase, RuleSource::kStorkFile));
    out.push_back(std::move(rule));
  }
  if (out.empty()) return Error(Errc::kInvalidArgument, origin + ": no Rule or BackupRule documents found");
  return out;
}

Result<std::vector<Rule>> load_rule_file(const std::filesystem::path& file, Phase phase) {
  auto text = read_file_bounded(file, "rule file");
  if (!text) return Error(Errc::kInvalidArgument, text.error().message);
  return parse_rule_documents(*text, file.string(), phase);
}

Status validate_for_phase(const Rule& rule, Phase phase) {
  if (phase == Phase::kPre) return ok();
  for (const auto& item : rule.items) {
    for (const auto& a : item.actions) {
      if (a.background) {
        return Error(Errc::kInvalidArgument, item.origin + ": background actions are only allowed in pre-exec rules, "
                                                           "not in the post-exec rule " + rule.origin);
      }
    }
  }
  return ok();
}

}  // namespace kvb::rules
