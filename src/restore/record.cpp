#include "restore/record.h"

#include "common/doc_reader.h"
#include "common/yaml_json.h"

#include <boost/json.hpp>

namespace kvb::restore {
namespace json = boost::json;

std::string_view to_string(RestorePhase p) {
  switch (p) {
    case RestorePhase::kInProgress: return "InProgress";
    case RestorePhase::kCompleted: return "Completed";
    case RestorePhase::kPartiallyFailed: return "PartiallyFailed";
    case RestorePhase::kFailed: return "Failed";
  }
  return "Failed";
}

std::string_view to_string(RestoreStage s) {
  switch (s) {
    case RestoreStage::kPending: return "Pending";
    case RestoreStage::kCreating: return "Creating";
    case RestoreStage::kReplacing: return "Replacing";
    case RestoreStage::kCreatingVm: return "CreatingVm";
    case RestoreStage::kDone: return "Done";
  }
  return "Pending";
}

namespace {

json::array strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.push_back(json::string(s));
  return a;
}

json::value time_json(const std::optional<WallTime>& t) {
  return t ? json::value(format_rfc3339(*t, TimePrecision::kNanos)) : json::value(nullptr);
}

json::object millis_json(const StageMillis& m) {
  json::object o;
  for (const auto& [stage, ms] : m) o[stage] = ms;
  return o;
}

Result<StageMillis> millis_from(DocReader& parent) {
  StageMillis m;
  const json::value* v = parent.raw("millis");
  if (!v || v->is_null()) return m;
  if (!v->is_object()) return parent.error("millis", "must be an object of stage: milliseconds");
  for (const auto& [stage, ms] : v->as_object()) {
    if (!ms.is_int64() && !ms.is_uint64()) return parent.error("millis", "stage " + std::string(stage) + " is not an integer");
    int64_t n = ms.to_number<int64_t>();
    if (n < 0) return parent.error("millis", "stage " + std::string(stage) + ": a duration cannot be negative");
    m.emplace_back(std::string(stage), n);
  }
  return m;
}

}  // namespace

void add_millis(StageMillis& m, const std::string& stage, int64_t ms) {
  for (auto& [s, v] : m) {
    if (s == stage) {
      v += ms;
      return;
    }
  }
  m.emplace_back(stage, ms);
}

int64_t millis_of(const StageMillis& m, const std::string& stage) {
  for (const auto& [s, v] : m) {
    if (s == stage) return v;
  }
  return 0;
}

json::object verification_json(const VerificationRecord& v) {
  return json::object{{"vm", v.vm},
                      {"result", v.result},
                      {"secondsToAgentReady", v.seconds_to_agent_ready},
                      {"reason", v.reason},
                      {"namespace", v.ns},
                      {"problems", strings(v.problems)}};
}

json::object RestoreRecord::to_json() const {
  json::array vm_arr;
  for (const auto& vm : vms) {
    json::array claims, created;
    for (const auto& c : vm.claims) {
      claims.push_back(json::object{{"volume", c.volume},
                                    {"claim", c.claim},
                                    {"sourceClaim", c.source_claim},
                                    {"volumeSnapshot", c.volume_snapshot},
                                    {"storageClass", c.storage_class},
                                    {"size", c.size},
                                    {"phase", c.phase},
                                    {"dataSource", c.data_source},
                                    {"repositorySnapshot", c.repository_snapshot},
                                    {"sha256", c.sha256},
                                    {"uploadedBytes", c.uploaded_bytes},
                                    {"uploadAttempts", c.upload_attempts},
                                    {"uploadMillis", c.upload_ms},
                                    {"millis", millis_json(c.millis)}});
    }
    for (const auto& c : vm.created) {
      created.push_back(json::object{{"resource", c.resource}, {"namespace", c.ns}, {"name", c.name}, {"removed", c.removed}});
    }
    json::value verification = nullptr;
    if (vm.verification) verification = verification_json(*vm.verification);
    vm_arr.push_back(json::object{{"sourceNamespace", vm.source_ns},
                                  {"sourceName", vm.source_name},
                                  {"namespace", vm.ns},
                                  {"name", vm.name},
                                  {"phase", vm.phase},
                                  {"stage", to_string(vm.stage)},
                                  {"reason", vm.reason},
                                  {"runStrategy", vm.run_strategy},
                                  {"claims", claims},
                                  {"created", created},
                                  {"replaced", strings(vm.replaced)},
                                  {"problems", strings(vm.problems)},
                                  {"verification", verification},
                                  {"millis", millis_json(vm.millis)}});
  }
  return json::object{{"apiVersion", "kvbackup.io/v1alpha1"},
                      {"kind", "RestoreRecord"},
                      {"formatVersion", 1},
                      {"name", name},
                      {"backup", backup},
                      {"kvbackupVersion", kvbackup_version},
                      {"cluster", cluster},
                      {"startedAt", format_rfc3339(started, TimePrecision::kNanos)},
                      {"finishedAt", time_json(finished)},
                      {"phase", to_string(phase)},
                      {"error", error},
                      {"options", spec_json(options)},
                      {"vms", vm_arr},
                      {"millis", millis_json(millis)}};
}

Result<RestoreRecord> RestoreRecord::from_json(const json::value& v, const std::string& origin) {
  DocReader r(v, origin, "");
  if (!v.is_object()) return r.error_here("a restore record must be a JSON object");
  RestoreRecord rec;
  KVB_TRY(auto kind, r.str("kind"));
  if (kind != "RestoreRecord") return r.error("kind", "\"" + kind + "\" is not RestoreRecord");
  KVB_TRY(rec.name, r.required_str("name"));
  KVB_TRY(rec.backup, r.required_str("backup"));
  KVB_TRY(rec.kvbackup_version, r.str("kvbackupVersion"));
  KVB_TRY(rec.cluster, r.str("cluster"));
  KVB_TRY(auto started, r.required_str("startedAt"));
  auto st = parse_rfc3339(started);
  if (!st) return r.error("startedAt", st.error().message);
  rec.started = *st;
  KVB_TRY(auto finished, r.str("finishedAt"));
  if (!finished.empty()) {
    if (auto f = parse_rfc3339(finished)) rec.finished = *f;
  }
  KVB_TRY(auto phase, r.str("phase"));
  bool known = false;
  for (auto p : {RestorePhase::kInProgress, RestorePhase::kCompleted, RestorePhase::kPartiallyFailed, RestorePhase::kFailed}) {
    if (to_string(p) == phase) {
      rec.phase = p;
      known = true;
    }
  }
  if (!known) return r.error("phase", "\"" + phase + "\" is not a restore phase");
  KVB_TRY(rec.error, r.str("error"));
  KVB_TRY(auto opts, r.object("options"));
  KVB_TRY(rec.options, spec_from_json(opts));
  rec.options.name = rec.name;
  rec.options.backup = rec.backup;
  KVB_TRY(rec.millis, millis_from(r));
  KVB_TRY(auto vms, r.list("vms"));
  for (auto& vr : vms) {
    VmRestoreRecord vm;
    KVB_TRY(vm.source_ns, vr.str("sourceNamespace"));
    KVB_TRY(vm.source_name, vr.str("sourceName"));
    KVB_TRY(vm.ns, vr.required_str("namespace"));
    KVB_TRY(vm.name, vr.required_str("name"));
    KVB_TRY(vm.phase, vr.str("phase"));
    KVB_TRY(auto stage, vr.str("stage", "Pending"));
    bool stage_known = false;
    for (auto each : {RestoreStage::kPending, RestoreStage::kCreating, RestoreStage::kReplacing, RestoreStage::kCreatingVm,
                    RestoreStage::kDone}) {
      if (to_string(each) == stage) {
        vm.stage = each;
        stage_known = true;
      }
    }
    if (!stage_known) return vr.error("stage", "\"" + stage + "\" is not a restore stage");
    KVB_TRY(vm.reason, vr.str("reason"));
    KVB_TRY(vm.run_strategy, vr.str("runStrategy"));
    KVB_TRY(auto claims, vr.list("claims"));
    for (auto& c : claims) {
      ClaimRecord cr;
      KVB_TRY(cr.volume, c.str("volume"));
      KVB_TRY(cr.claim, c.str("claim"));
      KVB_TRY(cr.source_claim, c.str("sourceClaim"));
      KVB_TRY(cr.volume_snapshot, c.str("volumeSnapshot"));
      KVB_TRY(cr.storage_class, c.str("storageClass"));
      KVB_TRY(cr.size, c.str("size"));
      KVB_TRY(cr.phase, c.str("phase"));
      KVB_TRY(cr.data_source, c.str("dataSource", "snapshot"));
      KVB_TRY(cr.repository_snapshot, c.str("repositorySnapshot", ""));
      KVB_TRY(cr.sha256, c.str("sha256", ""));
      KVB_TRY(auto uploaded, c.integer("uploadedBytes", 0));
      cr.uploaded_bytes = static_cast<uint64_t>(uploaded);
      KVB_TRY(auto attempts, c.integer("uploadAttempts", 0));
      cr.upload_attempts = static_cast<int>(attempts);
      KVB_TRY(cr.upload_ms, c.integer("uploadMillis", 0));
      KVB_TRY(cr.millis, millis_from(c));
      vm.claims.push_back(std::move(cr));
    }
    KVB_TRY(auto created, vr.list("created"));
    for (auto& c : created) {
      CreatedObject co;
      KVB_TRY(co.resource, c.str("resource"));
      KVB_TRY(co.ns, c.str("namespace"));
      KVB_TRY(co.name, c.str("name"));
      KVB_TRY(co.removed, c.boolean("removed", false));
      vm.created.push_back(std::move(co));
    }
    KVB_TRY(vm.replaced, vr.string_list("replaced"));
    KVB_TRY(vm.problems, vr.string_list("problems"));
    KVB_TRY(vm.millis, millis_from(vr));
    if (const auto* ver = vr.value().is_object() ? vr.value().as_object().if_contains("verification") : nullptr;
        ver && ver->is_object()) {
      KVB_TRY(auto vo, vr.object("verification"));
      VerificationRecord ver_rec;
      KVB_TRY(ver_rec.vm, vo.str("vm"));
      KVB_TRY(ver_rec.result, vo.str("result"));
      KVB_TRY(ver_rec.reason, vo.str("reason"));
      KVB_TRY(ver_rec.ns, vo.str("namespace"));
      KVB_TRY(ver_rec.problems, vo.string_list("problems"));
      if (const auto* secs = ver->as_object().if_contains("secondsToAgentReady"); secs && secs->is_number()) {
        ver_rec.seconds_to_agent_ready = secs->to_number<double>();
      }
      vm.verification = std::move(ver_rec);
    }
    rec.vms.push_back(std::move(vm));
  }
  return rec;
}

std::string restore_record_path(const std::string& name) { return "restores/" + name + "/restore.json"; }

Result<RestoreRecord> load_restore_record(const location::Location& loc, const std::string& name) {
  std::string path = restore_record_path(name);
  if (name.empty() || name.find('/') != std::string::npos || !loc.exists(path)) {
    return Error(Errc::kNotFound, "restore \"" + name + "\" not found in " + loc.describe());
  }
  KVB_TRY(auto text, loc.get(path));
  std::string origin = loc.describe() + "/" + path;
  KVB_TRY(auto doc, parse_json(text, origin));
  return RestoreRecord::from_json(doc, origin);
}

}  // namespace kvb::restore
