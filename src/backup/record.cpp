#include "backup/record.h"

#include "backup/spec.h"
#include "common/doc_reader.h"
#include "common/yaml_json.h"

#include <boost/json.hpp>

#include <cmath>

namespace kvb::backup {
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

std::optional<WallTime> time_from(DocReader& r, std::string_view key) {
  auto s = r.str(key);
  if (!s || s->empty()) return std::nullopt;
  auto t = parse_rfc3339(*s);
  if (!t) return std::nullopt;
  return *t;
}

double round3(double v) { return std::round(v * 1000) / 1000; }

json::array strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.push_back(json::string(s));
  return a;
}

}  // namespace

double FreezeRecord::window_ms() const {
  auto start = frozen_at ? frozen_at : requested_at;
  auto end = thawed_at ? thawed_at : thaw_requested_at;
  if (!start || !end) return 0;
  return std::chrono::duration<double, std::milli>(*end - *start).count();
}

json::object BackupRecord::to_json() const {
  json::array vm_arr;
  for (const auto& vm : vms) {
    json::array vols;
    for (const auto& v : vm.volumes) {
      json::object o{{"name", v.name},
                     {"pvc", v.pvc},
                     {"storageClass", v.storage_class},
                     {"snapshotClass", v.snapshot_class},
                     {"volumeSnapshot", v.volume_snapshot},
                     {"volumeSnapshotContent", v.content},
                     {"cutAt", time_json(v.cut_at)},
                     {"readyAt", time_json(v.ready_at)},
                     {"size", v.size},
                     {"restoreSize", v.restore_size}};
      if (!v.error.empty()) o["error"] = v.error;
      vols.push_back(o);
    }
    json::array execs;
    for (const auto& e : vm.executions) {
      execs.push_back(json::object{{"phase", e.phase},
                                   {"rule", e.rule},
                                   {"pod", e.pod},
                                   {"container", e.container},
                                   {"command", strings(e.command)},
                                   {"exitCode", e.exit_code},
                                   {"attempts", e.attempts},
                                   {"durationMs", round3(e.duration_ms)},
                                   {"verdict", e.verdict},
                                   {"stdout", e.stdout_excerpt},
                                   {"stderr", e.stderr_excerpt}});
    }
    vm_arr.push_back(json::object{
        {"namespace", vm.ns},
        {"name", vm.name},
        {"phase", to_string(vm.phase)},
        {"promised", to_string(vm.promised)},
        {"consistency", to_string(vm.consistency)},
        {"reason", vm.reason},
        {"freeze", json::object{{"method", vm.freeze.method},
                                {"requestedAt", time_json(vm.freeze.requested_at)},
                                {"frozenAt", time_json(vm.freeze.frozen_at)},
                                {"thawRequestedAt", time_json(vm.freeze.thaw_requested_at)},
                                {"thawedAt", time_json(vm.freeze.thawed_at)},
                                {"windowMs", round3(vm.freeze.window_ms())},
                                {"evidence", vm.freeze.evidence}}},
        {"volumes", vols},
        {"ruleExecutions", execs},
        {"problems", strings(vm.problems)},
        {"resources", strings(vm.resources)}});
  }
  const auto& o = options;
  return json::object{
      {"apiVersion", "kvbackup.io/v1alpha1"},
      {"kind", "BackupRecord"},
      {"formatVersion", format_version},
      {"name", name},
      {"kvbackupVersion", kvbackup_version},
      {"cluster", cluster},
      {"scope", json::object{{"namespaces", strings(o.namespaces)},
                             {"allNamespaces", o.all_namespaces},
                             {"vms", strings(o.vms)},
                             {"selector", o.selector}}},
      {"options", json::object{{"rules", o.rules},
                               {"preRule", o.pre_rule},
                               {"postRule", o.post_rule},
                               {"freezeMethod", o.freeze_method},
                               {"onNoAgent", o.on_no_agent},
                               {"concurrency", o.concurrency},
                               {"freezeDeadline", o.freeze_deadline},
                               {"consistencyGroup", o.consistency_group}}},
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
  KVB_TRY(auto kind, r.str("kind"));
  if (kind != "BackupRecord") return r.error("kind", "\"" + kind + "\" is not BackupRecord");
  KVB_TRY(auto fv, r.integer("formatVersion", 1));
  if (fv != 1) return r.error("formatVersion", "version " + std::to_string(fv) + " is not supported by this kvbackup");
  b.format_version = static_cast<int>(fv);
  KVB_TRY(b.name, r.required_str("name"));
  KVB_TRY(b.kvbackup_version, r.str("kvbackupVersion"));
  KVB_TRY(b.cluster, r.str("cluster"));
  KVB_TRY(auto scope, r.object("scope"));
  KVB_TRY(b.options.namespaces, scope.string_list("namespaces"));
  KVB_TRY(b.options.all_namespaces, scope.boolean("allNamespaces", false));
  KVB_TRY(b.options.vms, scope.string_list("vms"));
  KVB_TRY(b.options.selector, scope.str("selector"));
  KVB_TRY(auto opts, r.object("options"));
  KVB_TRY(b.options.rules, opts.str("rules", "builtin"));
  KVB_TRY(b.options.freeze_method, opts.str("freezeMethod", "exec"));
  KVB_TRY(b.options.consistency_group, opts.str("consistencyGroup", "none"));
  KVB_TRY(auto started, r.required_str("startedAt"));
  auto st = parse_rfc3339(started);
  if (!st) return r.error("startedAt", st.error().message);
  b.started = *st;
  b.finished = time_from(r, "finishedAt");
  KVB_TRY(auto phase, r.str("phase"));
  auto p = parse_enum<BackupPhase>(phase, {BackupPhase::kInProgress, BackupPhase::kCompleted, BackupPhase::kPartiallyFailed,
                                           BackupPhase::kFailed});
  if (!p) return r.error("phase", "\"" + phase + "\" is not a backup phase");
  b.phase = *p;
  KVB_TRY(b.error, r.str("error"));
  KVB_TRY(b.warnings, r.string_list("warnings"));
  KVB_TRY(auto vms, r.list("vms"));
  for (auto& vr : vms) {
    VmRecord vm;
    KVB_TRY(vm.ns, vr.required_str("namespace"));
    KVB_TRY(vm.name, vr.required_str("name"));
    KVB_TRY(auto vphase, vr.str("phase"));
    auto vp = parse_enum<VmPhase>(vphase, {VmPhase::kCompleted, VmPhase::kFailed, VmPhase::kSkipped});
    if (!vp) return vr.error("phase", "\"" + vphase + "\" is not a VM phase");
    vm.phase = *vp;
    for (auto [key, target] : {std::pair<const char*, Consistency*>{"consistency", &vm.consistency},
                               std::pair<const char*, Consistency*>{"promised", &vm.promised}}) {
      KVB_TRY(auto c, vr.str(key, "None"));
      auto cv = parse_enum<Consistency>(c, {Consistency::kFileSystemConsistent, Consistency::kCrashConsistent,
                                            Consistency::kOffline, Consistency::kNone});
      if (!cv) return vr.error(key, "\"" + c + "\" is not a consistency");
      *target = *cv;
    }
    KVB_TRY(vm.reason, vr.str("reason"));
    KVB_TRY(auto fr, vr.object("freeze"));
    KVB_TRY(vm.freeze.method, fr.str("method"));
    KVB_TRY(vm.freeze.evidence, fr.str("evidence"));
    vm.freeze.requested_at = time_from(fr, "requestedAt");
    vm.freeze.frozen_at = time_from(fr, "frozenAt");
    vm.freeze.thaw_requested_at = time_from(fr, "thawRequestedAt");
    vm.freeze.thawed_at = time_from(fr, "thawedAt");
    KVB_TRY(auto vols, vr.list("volumes"));
    for (auto& vo : vols) {
      VolumeRecord vol;
      KVB_TRY(vol.name, vo.str("name"));
      KVB_TRY(vol.pvc, vo.str("pvc"));
      KVB_TRY(vol.storage_class, vo.str("storageClass"));
      KVB_TRY(vol.snapshot_class, vo.str("snapshotClass"));
      KVB_TRY(vol.volume_snapshot, vo.str("volumeSnapshot"));
      KVB_TRY(vol.content, vo.str("volumeSnapshotContent"));
      KVB_TRY(vol.restore_size, vo.str("restoreSize"));
      KVB_TRY(vol.size, vo.str("size"));
      KVB_TRY(vol.error, vo.str("error"));
      vol.cut_at = time_from(vo, "cutAt");
      vol.ready_at = time_from(vo, "readyAt");
      vm.volumes.push_back(std::move(vol));
    }
    KVB_TRY(vm.problems, vr.string_list("problems"));
    KVB_TRY(vm.resources, vr.string_list("resources"));
    b.vms.push_back(std::move(vm));
  }
  return b;
}

std::string backup_record_path(const std::string& name) { return "backups/" + name + "/backup.json"; }

Result<BackupRecord> load_backup_record(const location::Location& loc, const std::string& name) {
  KVB_CHECK(validate_backup_name(name));
  std::string path = backup_record_path(name);
  if (!loc.exists(path)) return Error(Errc::kNotFound, "backup \"" + name + "\" not found in " + loc.describe());
  KVB_TRY(auto text, loc.get(path));
  std::string origin = loc.describe() + "/" + path;
  KVB_TRY(auto doc, parse_json(text, origin));
  return BackupRecord::from_json(doc, origin);
}

}  // namespace kvb::backup
