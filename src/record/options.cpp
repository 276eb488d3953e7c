#include "record/options.h"

#include "common/doc_reader.h"
#include "common/duration.h"

#include <boost/json.hpp>

namespace kvb::record {
namespace json = boost::json;

std::string_view to_string(RulesMode m) { return m == RulesMode::kBuiltin ? "builtin" : "custom"; }
std::string_view to_string(FreezeMethod m) { return m == FreezeMethod::kExec ? "exec" : "subresource"; }
std::string_view to_string(OnNoAgent m) {
  switch (m) {
    case OnNoAgent::kCrashConsistent: return "crash-consistent";
    case OnNoAgent::kSkip: return "skip";
    case OnNoAgent::kFail: return "fail";
  }
  return "crash-consistent";
}
std::string_view to_string(ConsistencyGroup m) { return m == ConsistencyGroup::kNone ? "none" : "all"; }

namespace {

template <class E>
Result<E> parse_one_of(std::string_view s, std::string_view what, std::initializer_list<E> values) {
  std::string accepted;
  for (E v : values) {
    if (to_string(v) == s) return v;
    accepted += (accepted.empty() ? "" : ", ") + std::string(to_string(v));
  }
  return Error(Errc::kInvalidArgument, std::string(what) + " \"" + std::string(s) + "\": expected one of " + accepted);
}

std::string millis_text(std::chrono::milliseconds d) { return format_duration(d); }

Result<std::chrono::milliseconds> duration_field(DocReader& r, std::string_view key, std::chrono::milliseconds def) {
  KVB_TRY(auto text, r.str(key, millis_text(def)));
  auto d = parse_duration(text);
  if (!d) return r.error(key, d.error().message);
  return std::chrono::duration_cast<std::chrono::milliseconds>(*d);
}

json::array strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.push_back(json::string(s));
  return a;
}

}  // namespace

Result<RulesMode> parse_rules_mode(std::string_view s, std::string_view what) {
  return parse_one_of(s, what, {RulesMode::kBuiltin, RulesMode::kCustom});
}
Result<FreezeMethod> parse_freeze_method(std::string_view s, std::string_view what) {
  return parse_one_of(s, what, {FreezeMethod::kExec, FreezeMethod::kSubresource});
}
Result<OnNoAgent> parse_on_no_agent(std::string_view s, std::string_view what) {
  return parse_one_of(s, what, {OnNoAgent::kCrashConsistent, OnNoAgent::kSkip, OnNoAgent::kFail});
}
Result<ConsistencyGroup> parse_consistency_group(std::string_view s, std::string_view what) {
  return parse_one_of(s, what, {ConsistencyGroup::kNone, ConsistencyGroup::kAll});
}

json::object BackupOptions::scope_json() const {
  return json::object{{"namespaces", strings(scope.namespaces)},
                      {"allNamespaces", scope.all_namespaces},
                      {"vms", strings(scope.vms)},
                      {"selector", scope.selector}};
}

json::object BackupOptions::options_json() const {
  json::object map;
  for (const auto& [sc, vsc] : snapshot_class_map) map[sc] = vsc;
  return json::object{{"rules", to_string(rules)},
                      {"preRule", pre_rule},
                      {"postRule", post_rule},
                      {"freezeMethod", to_string(freeze_method)},
                      {"onNoAgent", to_string(on_no_agent)},
                      {"concurrency", concurrency},
                      {"freezeDeadline", millis_text(freeze_deadline)},
                      {"readyTimeout", millis_text(ready_timeout)},
                      {"freezeWait", millis_text(freeze_wait)},
                      {"consistencyGroup", to_string(consistency_group)},
                      {"snapshotClass", snapshot_class},
                      {"snapshotClassMap", map},
                      {"copyData", copy_data},
                      {"dataConcurrency", data_concurrency}};
}

Result<BackupOptions> BackupOptions::from_json(DocReader& scope, DocReader& o) {
  BackupOptions b;
  KVB_TRY(b.scope.namespaces, scope.string_list("namespaces"));
  KVB_TRY(b.scope.all_namespaces, scope.boolean("allNamespaces", false));
  KVB_TRY(b.scope.vms, scope.string_list("vms"));
  KVB_TRY(b.scope.selector, scope.str("selector"));
  auto field = [&o](std::string_view key, auto def, auto parse) -> decltype(parse(std::string_view{}, std::string_view{})) {
    KVB_TRY(auto text, o.str(key, std::string(to_string(def))));
    auto v = parse(text, key);
    if (!v) return o.error(key, "\"" + text + "\" is not valid");
    return *v;
  };
  KVB_TRY(b.rules, field("rules", b.rules, parse_rules_mode));
  KVB_TRY(b.pre_rule, o.str("preRule"));
  KVB_TRY(b.post_rule, o.str("postRule"));
  KVB_TRY(b.freeze_method, field("freezeMethod", b.freeze_method, parse_freeze_method));
  KVB_TRY(b.on_no_agent, field("onNoAgent", b.on_no_agent, parse_on_no_agent));
  KVB_TRY(auto conc, o.integer("concurrency", b.concurrency));
  b.concurrency = static_cast<int>(conc);
  KVB_TRY(b.freeze_deadline, duration_field(o, "freezeDeadline", b.freeze_deadline));
  KVB_TRY(b.ready_timeout, duration_field(o, "readyTimeout", b.ready_timeout));
  KVB_TRY(b.freeze_wait, duration_field(o, "freezeWait", b.freeze_wait));
  KVB_TRY(b.consistency_group, field("consistencyGroup", b.consistency_group, parse_consistency_group));
  KVB_TRY(b.snapshot_class, o.str("snapshotClass"));
  KVB_TRY(b.snapshot_class_map, o.string_map("snapshotClassMap"));
  KVB_TRY(b.copy_data, o.boolean("copyData", b.copy_data));
  KVB_TRY(auto dc, o.integer("dataConcurrency", b.data_concurrency));
  b.data_concurrency = static_cast<int>(dc);
  return b;
}

}  // namespace kvb::record
