#include "testcluster/controller_admission.h"

#include "kube/object.h"

#include <boost/json.hpp>

namespace kvb::testcluster {
namespace json = boost::json;

namespace {

Error invalid(const ResourceInfo& r, const Object& obj, const std::string& field, const std::string& type,
              const std::string& message) {
  // As the API server words a failed CEL rule:
  //   <Kind>.<group> "<name>" is invalid: <field>: Invalid value: "<type>": <message>
  std::string kind = r.ref.group.empty() ? r.ref.kind : r.ref.kind + "." + r.ref.group;
  Error e(Errc::kInvalid, kind + " \"" + std::string(kube::name_of(obj)) + "\" is invalid: " + field +
                              ": Invalid value: \"" + type + "\": " + message);
  e.http_status = 422;
  e.reason = "Invalid";
  return e;
}

// kube-apiserver pkg/api/persistentvolumeclaim/util.go NormalizeDataSources.
void default_claim(Object& next) {
  auto* spec = next.if_contains("spec");
  if (!spec || !spec->is_object()) return;
  json::object& s = spec->as_object();
  auto* ds = s.if_contains("dataSource");
  auto* ref = s.if_contains("dataSourceRef");
  bool has_ds = ds && ds->is_object();
  bool has_ref = ref && ref->is_object();
  auto copy = [](const json::value& from) {
    json::object mirror;
    for (const char* k : {"apiGroup", "kind", "name"}) {
      if (auto* v = from.as_object().if_contains(k)) mirror[k] = *v;
    }
    return mirror;
  };
  if (has_ds && !has_ref) {
    s["dataSourceRef"] = copy(*ds);
  } else if (has_ref && !has_ds && kube::str_at(*ref, {"namespace"}).empty()) {
    s["dataSource"] = copy(*ref);
  }
}

// pkg/apis/core/validation ValidatePersistentVolumeClaimSpec: both given must match.
Status validate_claim(const Object& next) {
  const auto* ds = kube::object_at(next, {"spec", "dataSource"});
  const auto* ref = kube::object_at(next, {"spec", "dataSourceRef"});
  if (!ds || !ref) return ok();
  bool same = kube::str_at(*ref, {"namespace"}).empty();
  for (const char* k : {"apiGroup", "kind", "name"}) {
    if (kube::str_at(*ds, {k}) != kube::str_at(*ref, {k})) same = false;
  }
  if (same) return ok();
  Error e(Errc::kInvalid, "PersistentVolumeClaim \"" + std::string(kube::name_of(next)) +
                              "\" is invalid: spec: Invalid value: \"" + std::string(kube::str_at(*ds, {"name"})) +
                              "\": must match dataSourceRef");
  e.http_status = 422;
  e.reason = "Invalid";
  return e;
}

// external-snapshotter client/config/crd/snapshot.storage.k8s.io_volumesnapshots.yaml
// (x-kubernetes-validations).
Status validate_volume_snapshot(const ResourceInfo& r, const Object* old, const Object& next) {
  const json::object* src = kube::object_at(next, {"spec", "source"});
  auto has = [](const json::object* o, const char* k) { return o && o->contains(k) && !o->at(k).is_null(); };
  bool pvc = has(src, "persistentVolumeClaimName");
  bool content = has(src, "volumeSnapshotContentName");
  if (old) {
    const json::object* old_src = kube::object_at(*old, {"spec", "source"});
    for (const char* k : {"persistentVolumeClaimName", "volumeSnapshotContentName"}) {
      if (has(old_src, k) && !has(src, k)) {
        return invalid(r, next, "spec.source", "object", std::string(k) + " is required once set");
      }
      if (has(old_src, k) && has(src, k) && old_src->at(k) != src->at(k)) {
        return invalid(r, next, std::string("spec.source.") + k, "string", std::string(k) + " is immutable");
      }
    }
  }
  if (pvc == content) {
    return invalid(r, next, "spec.source", "object",
                   "exactly one of volumeSnapshotContentName and persistentVolumeClaimName must be set");
  }
  if (const auto* cls = kube::value_at(next, {"spec", "volumeSnapshotClassName"}); cls && cls->is_string() && cls->as_string().empty()) {
    return invalid(r, next, "spec.volumeSnapshotClassName", "string",
                   "volumeSnapshotClassName must not be the empty string when set");
  }
  return ok();
}

}  // namespace

static bool is_claims(const ResourceInfo& r) { return r.ref.group.empty() && r.ref.resource == "persistentvolumeclaims"; }

void default_data_sources(const ResourceInfo& r, Object& obj, const Object* old) {
  if (is_claims(r) && !old) default_claim(obj);  // the claim spec is immutable after create
}

Status validate_controller_kinds(const ResourceInfo& r, const Object& obj, const Object* old) {
  if (is_claims(r) && !old) return validate_claim(obj);
  if (r.ref.group == "snapshot.storage.k8s.io" && r.ref.resource == "volumesnapshots") return validate_volume_snapshot(r, old, obj);
  return ok();
}

Status admit_controller_kinds(const ResourceInfo& r, const Object* old, Object& next) {
  default_data_sources(r, next, old);
  return validate_controller_kinds(r, next, old);
}

}  // namespace kvb::testcluster
