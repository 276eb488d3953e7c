#include "record/backup_record.h"

#include "common/doc_reader.h"
#include "common/yaml_json.h"
#include "record/naming.h"

#include <boost/json.hpp>

#include <cmath>

namespace kvb::record {
namespace json = boost::json;

std::string_view to_string(Consistency c) {
  switch (c) {
    case Consistency::kFileSystemConsistent: return "FileSystemConsistent";
    case Consistency::kCrashConsistent: return "CrashConsistent";
    case Consistency::kOffline: return "Offline";
    case Consistency::kNone: return "None";
  }
  return "None";
}
std::string_view to_string(VmPhase p) {
  switch (p) {
    case VmPhase::kCompleted: return "Completed";
    case VmPhase::kFailed: return "Failed";
    case VmPhase::kSkipped: return "Skipped";
    case VmPhase::kPartiallyFailed: return "PartiallyFailed";
  }
  return "Failed";
}
std::string_view to_string(BackupPhase p) {
  switch (p) {
    case BackupPhase::kInProgress: return "InProgress";
    case BackupPhase::kCompleted: return "Completed";
    case BackupPhase::kPartiallyFailed: return "PartiallyFailed";
    case BackupPhase::kFailed: return "Failed";
  }
  return "Failed";
}
std::string_view to_string(FreezeKind k) {
  switch (k) {
    case FreezeKind::kNone: return "none";
    case FreezeKind::kBuiltinRules: return "exec/builtin";
    case FreezeKind::kCustomRules: return "exec/custom";
    case FreezeKind::kSubresource: return "subresource";
  }
  return "none";
}

namespace {

template <class E>
std::optional<E> parse_enum(std::string_view s, std::initializer_list<E> values) {
  for (E v : values)
    if (to_string(v) == s) return v;
  return std::nullopt;
}

json::value time_json(const std::optional<WallTime>& t) {
  return t ? json::value(format_rfc3339(*t, TimePrecision::kNanos)) : json::value(nullptr);
}

Result<std::optional<WallTime>> time_from(DocReader& r, std::string_view key) {
  const json::value* v = r.raw(key);
  if (!v || v->is_null()) return std::optional<WallTime>();
  if (!v->is_string()) return r.error(key, "must be an RFC 3339 time (got " + describe_json_value(*v) + ")");
  auto t = parse_rfc3339(v->get_string());
  if (!t) return r.error(key, t.error().message);
  return std::optional<WallTime>(*t);
}

double round3(double v) { return std::round(v * 1000) / 1000; }

json::array strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.push_back(json::string(s));
  return a;
}

// The freeze kind as two fields: method (exec, subresource, none) and, for exec, whose rules.
json::object freeze_json(const FreezeRecord& f) {
  json::object o;
  switch (f.kind) {
    case FreezeKind::kNone: o["method"] = "none"; break;
    case FreezeKind::kSubresource: o["method"] = to_string(FreezeMethod::kSubresource); break;
    case FreezeKind::kBuiltinRules:
    case FreezeKind::kCustomRules:
      o["method"] = to_string(FreezeMethod::kExec);
      o["rules"] = to_string(f.kind == FreezeKind::kBuiltinRules ? RulesMode::kBuiltin : RulesMode::kCustom);
      break;
  }
  o["requestedAt"] = time_json(f.requested_at);
  o["frozenAt"] = time_json(f.frozen_at);
  o["heldAt"] = time_json(f.held_at);
  o["thawRequestedAt"] = time_json(f.thaw_requested_at);
  o["thawedAt"] = time_json(f.thawed_at);
  o["thawOk"] = f.thaw_ok;
  o["autoThawSeconds"] = f.auto_thaw_seconds ? json::value(*f.auto_thaw_seconds) : json::value(nullptr);
  o["windowMs"] = round3(f.window_ms());
  o["evidence"] = f.evidence;
  o["hold"] = f.hold;
  o["lease"] = f.lease;
  return o;
}

Result<FreezeKind> freeze_kind_from(DocReader& fr) {
  KVB_TRY(std::string method, fr.str("method", "none"));
  KVB_TRY(std::string rules, fr.str("rules"));
  // Records of kvbackup 0.1 wrote one field, "<method>-<rules>".
  if (auto dash = method.find('-'); dash != std::string::npos && rules.empty()) {
    rules = method.substr(dash + 1);
    method = method.substr(0, dash);
  }
  if (method == "none" || method.empty()) return FreezeKind::kNone;
  auto m = parse_freeze_method(method, "freeze.method");
  if (!m) return fr.error("method", "\"" + method + "\" is not a freeze method");
  if (*m == FreezeMethod::kSubresource) return FreezeKind::kSubresource;
  auto r = parse_rules_mode(rules.empty() ? std::string(to_string(RulesMode::kBuiltin)) : rules, "freeze.rules");
  if (!r) return fr.error("rules", "\"" + rules + "\" is not builtin or custom");
  return *r == RulesMode::kBuiltin ? FreezeKind::kBuiltinRules : FreezeKind::kCustomRules;
}

Result<FreezeRecord> freeze_from(DocReader& fr) {
  FreezeRecord f;
  KVB_TRY(f.kind, freeze_kind_from(fr));
  KVB_TRY(f.requested_at, time_from(fr, "requestedAt"));
  KVB_TRY(f.frozen_at, time_from(fr, "frozenAt"));
  KVB_TRY(f.held_at, time_from(fr, "heldAt"));
  KVB_TRY(f.thaw_requested_at, time_from(fr, "thawRequestedAt"));
  KVB_TRY(f.thawed_at, time_from(fr, "thawedAt"));
  KVB_TRY(f.thaw_ok, fr.boolean("thawOk", true));
  if (const auto* a = fr.raw("autoThawSeconds"); a && !a->is_null()) {
    if (!a->is_int64()) return fr.error("autoThawSeconds", "must be an integer (got " + describe_json_value(*a) + ")");
    f.auto_thaw_seconds = a->get_int64();
  }
  (void)fr.raw("windowMs");  // derived
  KVB_TRY(f.evidence, fr.str("evidence"));
  KVB_TRY(f.hold, fr.str("hold"));
  KVB_TRY(f.lease, fr.str("lease"));
  return f;
}

json::object volume_json(const VolumeRecord& v) {
  json::object o{{"name", v.name},
                 {"pvc", v.pvc},
                 {"storageClass", v.storage_class},
                 {"snapshotClass", v.snapshot_class},
                 {"volumeSnapshot", v.volume_snapshot},
                 {"volumeSnapshotUid", v.snapshot_uid},
                 {"deleted", v.deleted},
                 {"volumeSnapshotContent", v.content},
                 {"cutAt", time_json(v.cut_at)},
                 {"readyAt", time_json(v.ready_at)},
                 {"size", v.size},
                 {"restoreSize", v.restore_size}};
  if (!v.error.empty()) o["error"] = v.error;
  if (v.copy) {
    const auto& c = *v.copy;
    json::object co{{"series", c.series},
                    {"repositorySnapshot", c.repository_snapshot},
                    {"volumeMode", c.volume_mode},
                    {"bytes", c.bytes},
                    {"newBytes", c.new_bytes},
                    {"storedBytes", c.stored_bytes},
                    {"sha256", c.sha256},
                    {"retriedRanges", c.retried_ranges}};
    if (!c.transport.empty()) co["transport"] = c.transport;
    if (!c.change_tracking.empty()) {
      co["changeTracking"] = c.change_tracking;
      co["downloadedBytes"] = c.downloaded_bytes;
    }
    if (!c.change_tracking_reason.empty()) co["changeTrackingReason"] = c.change_tracking_reason;
    if (c.allocated_only) co["allocatedOnly"] = true;
    if (!c.allocated_only_reason.empty()) co["allocatedOnlyReason"] = c.allocated_only_reason;
    if (c.millis.any()) {
      co["millis"] = json::object{{"plan", c.millis.plan},         {"create", c.millis.create},   {"ready", c.millis.ready},
                                  {"transfer", c.millis.transfer}, {"cleanup", c.millis.cleanup}};
    }
    if (!c.error.empty()) co["error"] = c.error;
    o["copy"] = std::move(co);
  }
  return o;
}

Result<DataCopyRecord> copy_from(DocReader& r) {
  DataCopyRecord c;
  KVB_TRY(c.series, r.str("series"));
  KVB_TRY(c.repository_snapshot, r.str("repositorySnapshot"));
  KVB_TRY(c.volume_mode, r.str("volumeMode"));
  KVB_TRY(auto bytes, r.integer("bytes", 0));
  KVB_TRY(auto new_bytes, r.integer("newBytes", 0));
  KVB_TRY(auto stored, r.integer("storedBytes", 0));
  KVB_TRY(auto retried, r.integer("retriedRanges", 0));
  if (bytes < 0 || new_bytes < 0 || stored < 0 || retried < 0) return r.error("bytes", "sizes cannot be negative");
  c.bytes = static_cast<uint64_t>(bytes);
  c.new_bytes = static_cast<uint64_t>(new_bytes);
  c.stored_bytes = static_cast<uint64_t>(stored);
  c.retried_ranges = static_cast<unsigned>(retried);
  KVB_TRY(c.sha256, r.str("sha256"));
  KVB_TRY(c.transport, r.str("transport"));
  if (!c.transport.empty() && c.transport != "external" && c.transport != "port-forward") {
    return r.error("transport", "\"" + c.transport + "\" is not a data path (external, port-forward)");
  }
  KVB_TRY(c.change_tracking, r.str("changeTracking"));
  if (!c.change_tracking.empty() && c.change_tracking != "snapshot-metadata" && c.change_tracking != "fingerprint" && c.change_tracking != "full") {
    return r.error("changeTracking", "\"" + c.change_tracking + "\" is not a change tracking method (snapshot-metadata, fingerprint, full)");
  }
  KVB_TRY(c.change_tracking_reason, r.str("changeTrackingReason"));
  KVB_TRY(c.allocated_only, r.boolean("allocatedOnly", false));
  KVB_TRY(c.allocated_only_reason, r.str("allocatedOnlyReason"));
  KVB_TRY(auto downloaded, r.integer("downloadedBytes", 0));
  if (downloaded < 0) return r.error("downloadedBytes", "sizes cannot be negative");
  c.downloaded_bytes = static_cast<uint64_t>(downloaded);
  KVB_TRY(auto millis, r.object("millis"));
  for (auto [key, field] : {std::pair{"plan", &c.millis.plan}, std::pair{"create", &c.millis.create}, std::pair{"ready", &c.millis.ready},
                            std::pair{"transfer", &c.millis.transfer}, std::pair{"cleanup", &c.millis.cleanup}}) {
    KVB_TRY(*field, millis.integer(key, 0));
    if (*field < 0) return millis.error(key, "a duration cannot be negative");
  }
  KVB_CHECK(millis.finish());
  KVB_TRY(c.error, r.str("error"));
  return c;
}

Result<VolumeRecord> volume_from(DocReader& vo) {
  VolumeRecord vol;
  KVB_TRY(vol.name, vo.str("name"));
  KVB_TRY(vol.pvc, vo.str("pvc"));
  KVB_TRY(vol.storage_class, vo.str("storageClass"));
  KVB_TRY(vol.snapshot_class, vo.str("snapshotClass"));
  KVB_TRY(vol.volume_snapshot, vo.str("volumeSnapshot"));
  KVB_TRY(vol.snapshot_uid, vo.str("volumeSnapshotUid"));
  KVB_TRY(vol.deleted, vo.boolean("deleted", false));
  KVB_TRY(vol.content, vo.str("volumeSnapshotContent"));
  KVB_TRY(vol.restore_size, vo.str("restoreSize"));
  KVB_TRY(vol.size, vo.str("size"));
  KVB_TRY(vol.error, vo.str("error"));
  KVB_TRY(vol.cut_at, time_from(vo, "cutAt"));
  KVB_TRY(vol.ready_at, time_from(vo, "readyAt"));
  if (vo.has("copy")) {
    KVB_TRY(auto copy, vo.object("copy"));
    KVB_TRY(vol.copy, copy_from(copy));
  }
  return vol;
}

json::object execution_json(const ExecutionRecord& e) {
  return json::object{{"phase", e.phase},
                      {"rule", e.rule},
                      {"pod", e.pod},
                      {"container", e.container},
                      {"command", strings(e.command)},
                      {"exitCode", e.exit_code},
                      {"attempts", e.attempts},
                      {"durationMs", round3(e.duration_ms)},
                      {"verdict", e.verdict},
                      {"stdout", e.stdout_excerpt},
                      {"stderr", e.stderr_excerpt}};
}

Result<ExecutionRecord> execution_from(DocReader& er) {
  ExecutionRecord e;
  KVB_TRY(e.phase, er.str("phase"));
  KVB_TRY(e.rule, er.str("rule"));
  KVB_TRY(e.pod, er.str("pod"));
  KVB_TRY(e.container, er.str("container"));
  KVB_TRY(e.command, er.string_list("command"));
  KVB_TRY(auto code, er.integer("exitCode", -1));
  e.exit_code = static_cast<int>(code);
  KVB_TRY(auto attempts, er.integer("attempts", 0));
  e.attempts = static_cast<int>(attempts);
  if (const auto* d = er.raw("durationMs"); d && d->is_number()) e.duration_ms = d->to_number<double>();
  KVB_TRY(e.verdict, er.str("verdict"));
  KVB_TRY(e.stdout_excerpt, er.str("stdout"));
  KVB_TRY(e.stderr_excerpt, er.str("stderr"));
  return e;
}

Result<VmRecord> vm_from(DocReader& vr) {
  VmRecord vm;
  KVB_TRY(vm.ns, vr.required_str("namespace"));
  KVB_TRY(vm.name, vr.required_str("name"));
  KVB_TRY(auto vphase, vr.str("phase"));
  auto vp = parse_vm_phase(vphase);
  if (!vp) return vr.error("phase", "\"" + vphase + "\" is not a VM phase");
  vm.phase = *vp;
  for (auto [key, target] : {std::pair<const char*, Consistency*>{"consistency", &vm.consistency},
                             std::pair<const char*, Consistency*>{"promised", &vm.promised}}) {
    KVB_TRY(auto c, vr.str(key, "None"));
    auto cv = parse_consistency(c);
    if (!cv) return vr.error(key, "\"" + c + "\" is not a consistency");
    *target = *cv;
  }
  KVB_TRY(vm.reason, vr.str("reason"));
  KVB_TRY(auto fr, vr.object("freeze"));
  KVB_TRY(vm.freeze, freeze_from(fr));
  KVB_TRY(auto vols, vr.list("volumes"));
  for (auto& vo : vols) {
    KVB_TRY(auto vol, volume_from(vo));
    vm.volumes.push_back(std::move(vol));
  }
  KVB_TRY(auto execs, vr.list("ruleExecutions"));
  for (auto& er : execs) {
    KVB_TRY(auto e, execution_from(er));
    vm.executions.push_back(std::move(e));
  }
  KVB_TRY(vm.problems, vr.string_list("problems"));
  KVB_TRY(vm.resources, vr.string_list("resources"));
  return vm;
}

}  // namespace

std::optional<Consistency> parse_consistency(std::string_view s) {
  return parse_enum<Consistency>(s, {Consistency::kFileSystemConsistent, Consistency::kCrashConsistent, Consistency::kOffline,
                                     Consistency::kNone});
}
std::optional<VmPhase> parse_vm_phase(std::string_view s) {
  return parse_enum<VmPhase>(s, {VmPhase::kCompleted, VmPhase::kFailed, VmPhase::kSkipped, VmPhase::kPartiallyFailed});
}
std::optional<BackupPhase> parse_backup_phase(std::string_view s) {
  return parse_enum<BackupPhase>(s, {BackupPhase::kInProgress, BackupPhase::kCompleted, BackupPhase::kPartiallyFailed,
                                     BackupPhase::kFailed});
}

double FreezeRecord::window_ms() const {
  auto start = frozen_at ? frozen_at : requested_at;
  auto end = thawed_at ? thawed_at : thaw_requested_at;
  if (!start || !end) return 0;
  return std::chrono::duration<double, std::milli>(*end - *start).count();
}

json::object BackupRecord::to_json() const {
  json::array vm_arr;
  for (const auto& vm : vms) {
    json::array vols, execs;
    for (const auto& v : vm.volumes) vols.push_back(volume_json(v));
    for (const auto& e : vm.executions) execs.push_back(execution_json(e));
    vm_arr.push_back(json::object{{"namespace", vm.ns},
                                  {"name", vm.name},
                                  {"phase", to_string(vm.phase)},
                                  {"promised", to_string(vm.promised)},
                                  {"consistency", to_string(vm.consistency)},
                                  {"reason", vm.reason},
                                  {"freeze", freeze_json(vm.freeze)},
                                  {"volumes", vols},
                                  {"ruleExecutions", execs},
                                  {"problems", strings(vm.problems)},
                                  {"resources", strings(vm.resources)}});
  }
  return json::object{{"apiVersion", "kvbackup.io/v1alpha1"},
                      {"kind", "BackupRecord"},
                      {"formatVersion", format_version},
                      {"name", name},
                      {"uid", uid},
                      {"kvbackupVersion", kvbackup_version},
                      {"cluster", cluster},
                      {"scope", options.scope_json()},
                      {"options", options.options_json()},
                      {"startedAt", format_rfc3339(started, TimePrecision::kNanos)},
                      {"finishedAt", time_json(finished)},
                      {"phase", to_string(phase)},
                      {"error", error},
                      {"warnings", strings(warnings)},
                      {"vms", vm_arr}};
}

Result<BackupRecord> BackupRecord::from_json(const json::value& v, const std::string& origin) {
  DocReader r(v, origin, "");
  if (!v.is_object()) return r.error_here("a backup record must be a JSON object");
  BackupRecord b;
  (void)r.raw("apiVersion");
  KVB_TRY(auto kind, r.str("kind"));
  if (kind != "BackupRecord") return r.error("kind", "\"" + kind + "\" is not BackupRecord");
  KVB_TRY(auto fv, r.integer("formatVersion", 1));
  if (fv != 1) return r.error("formatVersion", "version " + std::to_string(fv) + " is not supported by this kvbackup");
  b.format_version = static_cast<int>(fv);
  KVB_TRY(b.name, r.required_str("name"));
  KVB_TRY(b.uid, r.str("uid"));
  KVB_TRY(b.kvbackup_version, r.str("kvbackupVersion"));
  KVB_TRY(b.cluster, r.str("cluster"));
  KVB_TRY(auto scope, r.object("scope"));
  KVB_TRY(auto opts, r.object("options"));
  KVB_TRY(b.options, BackupOptions::from_json(scope, opts));
  KVB_TRY(auto started, r.required_str("startedAt"));
  auto st = parse_rfc3339(started);
  if (!st) return r.error("startedAt", st.error().message);
  b.started = *st;
  KVB_TRY(b.finished, time_from(r, "finishedAt"));
  KVB_TRY(auto phase, r.str("phase"));
  auto p = parse_backup_phase(phase);
  if (!p) return r.error("phase", "\"" + phase + "\" is not a backup phase");
  b.phase = *p;
  KVB_TRY(b.error, r.str("error"));
  KVB_TRY(b.warnings, r.string_list("warnings"));
  KVB_TRY(auto vms, r.list("vms"));
  for (auto& vr : vms) {
    KVB_TRY(auto vm, vm_from(vr));
    b.vms.push_back(std::move(vm));
  }
  return b;
}

Result<BackupRecord> parse_backup_record(std::string_view text, const std::string& origin) {
  KVB_TRY(auto doc, parse_json(text, origin));
  return BackupRecord::from_json(doc, origin);
}

Result<BackupRecord> load_backup_record(const location::Location& loc, const std::string& name) {
  KVB_CHECK(validate_backup_name(name));
  std::string path = backup_record_path(name);
  if (!loc.exists(path)) return Error(Errc::kNotFound, "backup \"" + name + "\" not found in " + loc.describe());
  KVB_TRY(auto text, loc.get(path));
  return parse_backup_record(text, loc.describe() + "/" + path);
}

}  // namespace kvb::record
