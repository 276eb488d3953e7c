// The apiextensions-apiserver's CustomResourceDefinition handling, as the test
// cluster simulates it (kubernetes staging/src/k8s.io/apiextensions-apiserver:
// pkg/controller/establish, pkg/controller/status naming_controller,
// pkg/controller/finalizer crd_finalizer.go): a CRD's served versions become
// resources (discovery, OpenAPI, every REST verb, watch, the status
// subresource when declared, its short names and categories); the CRD gets
// the customresourcecleanup finalizer, status.acceptedNames, storedVersions and
// the NamesAccepted and Established conditions; names another CRD of the
// group has accepted make NamesAccepted False (and the CRD is not served).
// Deleting it deletes its custom resources first (condition Terminating), then
// it goes and its resources are no longer served. Schemas, pruning, defaulting,
// versions and the CRD's own validation: crd_serving.h.
#include "common/time.h"
#include "kube/object.h"
#include "testcluster/core_controllers.h"

#include <boost/json.hpp>

#include <optional>
#include <set>

namespace kvb::testcluster {
namespace json = boost::json;

namespace {

constexpr const char* kCleanup = "customresourcecleanup.apiextensions.k8s.io";

std::vector<std::string> strings_at(const json::value& v, std::initializer_list<std::string_view> path) {
  std::vector<std::string> out;
  if (const auto* a = kube::array_at(v, path)) {
    for (const auto& s : *a) {
      if (s.is_string()) out.emplace_back(s.as_string());
    }
  }
  return out;
}

bool has_finalizer(const Object& o, std::string_view f) {
  for (const auto& s : strings_at(json::value(o), {"metadata", "finalizers"})) {
    if (s == f) return true;
  }
  return false;
}

json::object condition(const char* type, const char* status, const char* reason, const char* message,
                       const json::object& st) {
  std::string now = format_rfc3339(WallClock::now());
  if (const auto* conds = st.if_contains("conditions"); conds && conds->is_array()) {
    for (const auto& c : conds->as_array()) {
      if (kube::str_at(c, {"type"}) == type && kube::str_at(c, {"status"}) == status) {
        now = std::string(kube::str_at(c, {"lastTransitionTime"}));
      }
    }
  }
  return json::object{{"type", type}, {"status", status}, {"reason", reason}, {"message", message}, {"lastTransitionTime", now}};
}

// pkg/controller/status naming_controller.go calculateNamesAndConditions: the
// (reason, message) of the last conflict with the names other CRDs of the group
// have accepted (each check overwrites the condition, as upstream's does).
std::optional<std::pair<std::string, std::string>> name_conflict(const Store& store, const ResourceInfo& crds, const std::string& self,
                                                                 const std::string& group, const std::string& singular,
                                                                 const std::string& kind, const std::string& list_kind,
                                                                 const std::vector<std::string>& short_names) {
  std::set<std::string> resources, kinds;
  for (const Object* other : store.all(crds)) {
    json::value o(*other);
    if (kube::str_at(o, {"metadata", "name"}) == self || kube::str_at(o, {"spec", "group"}) != group) continue;
    for (const char* f : {"plural", "singular"}) {
      if (auto n = kube::str_at(o, {"status", "acceptedNames", f}); !n.empty()) resources.emplace(n);
    }
    for (const auto& n : strings_at(o, {"status", "acceptedNames", "shortNames"})) resources.insert(n);
    for (const char* f : {"kind", "listKind"}) {
      if (auto n = kube::str_at(o, {"status", "acceptedNames", f}); !n.empty()) kinds.emplace(n);
    }
  }
  std::optional<std::pair<std::string, std::string>> conflict;
  auto taken = [](const std::string& n) { return "\"" + n + "\" is already in use"; };
  if (resources.count(singular)) conflict = {"SingularConflict", taken(singular)};
  for (const auto& sn : short_names) {
    if (resources.count(sn)) conflict = {"ShortNamesConflict", taken(sn)};
  }
  if (kinds.count(kind)) conflict = {"KindConflict", taken(kind)};
  if (kinds.count(list_kind)) conflict = {"ListKindConflict", taken(list_kind)};
  return conflict;
}

}  // namespace

void CoreControllers::crd_changed(const StoreEvent& e) {
  Store& store = c_.store();
  const ResourceInfo& crds = c_.resource(res::kCustomResourceDefinitions);
  std::string name(kube::str_at(e.object, {"metadata", "name"}));
  if (e.type == "DELETED") {
    for (const auto& ref : custom_[name]) c_.registry().unserve_custom(ref.group, ref.version, ref.resource);
    custom_.erase(name);
    // Its names are free again: the naming controller requeues every CRD of the group.
    std::string group(kube::str_at(e.object, {"spec", "group"}));
    std::vector<Object> waiting;
    for (const Object* other : store.all(crds)) {
      if (kube::str_at(*other, {"spec", "group"}) != group) continue;
      if (const auto* conds = kube::array_at(*other, {"status", "conditions"})) {
        for (const auto& c : *conds) {
          if (kube::str_at(c, {"type"}) == "NamesAccepted" && kube::str_at(c, {"status"}) == "False") waiting.push_back(*other);
        }
      }
    }
    for (const auto& o : waiting) {
      StoreEvent again;
      again.type = "MODIFIED";
      again.object = o;
      crd_changed(again);
    }
    return;
  }
  const Object& crd = e.object;
  if (kube::value_at(crd, {"metadata", "deletionTimestamp"})) return crd_cleanup(name);
  if (!has_finalizer(crd, kCleanup)) {
    (void)store.mutate(crds, "", name, [](Object& o) {
      auto& m = o["metadata"].as_object();
      json::array f;
      if (auto* old = m.if_contains("finalizers"); old && old->is_array()) f = old->as_array();
      f.push_back(json::string(kCleanup));
      m["finalizers"] = std::move(f);
    });
    return;  // the MODIFIED event brings us back
  }
  json::value v(crd);
  std::string group(kube::str_at(v, {"spec", "group"}));
  std::string plural(kube::str_at(v, {"spec", "names", "plural"}));
  std::string kind(kube::str_at(v, {"spec", "names", "kind"}));
  std::string singular(kube::str_at(v, {"spec", "names", "singular"}));
  if (singular.empty()) {
    singular = kind;
    for (auto& ch : singular) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  bool namespaced = kube::str_at(v, {"spec", "scope"}) != "Cluster";
  std::string list_kind(kube::str_at(v, {"spec", "names", "listKind"}));
  if (list_kind.empty()) list_kind = kind + "List";
  // The naming controller: names another CRD of the group has accepted are refused.
  if (auto conflict = name_conflict(store, crds, name, group, singular, kind, list_kind, strings_at(v, {"spec", "names", "shortNames"}))) {
    for (const auto& ref : custom_[name]) c_.registry().unserve_custom(ref.group, ref.version, ref.resource);
    custom_[name].clear();
    (void)store.mutate(crds, "", name, [&](Object& o) {
      json::object st = o.contains("status") && o["status"].is_object() ? o["status"].as_object() : json::object();
      st["conditions"] = json::array{condition("NamesAccepted", "False", conflict->first.c_str(), conflict->second.c_str(), st),
                                     condition("Established", "False", "NotAccepted", "not all names are accepted", st)};
      if (!st.contains("acceptedNames")) st["acceptedNames"] = json::object{{"plural", ""}, {"kind", ""}};
      o["status"] = st;
    });
    return;
  }
  std::vector<kube::ResourceRef> serving;
  std::string storage;
  if (const auto* versions = kube::array_at(v, {"spec", "versions"})) {
    for (const auto& ver : *versions) {
      std::string vname(kube::str_at(ver, {"name"}));
      if (kube::bool_at(ver, {"storage"}).value_or(false)) storage = vname;
      if (!kube::bool_at(ver, {"served"}).value_or(false) || vname.empty()) continue;
      ResourceInfo info;
      info.ref = kube::ResourceRef{group, vname, plural, kind, namespaced};
      info.singular = singular;
      info.short_names = strings_at(v, {"spec", "names", "shortNames"});
      info.categories = strings_at(v, {"spec", "names", "categories"});
      info.has_status = kube::object_at(ver, {"subresources", "status"}) != nullptr;
      if (info.has_status) info.subresources = {"status"};
      kube::ResourceRef ref = info.ref;
      // A built-in of the same name stays the simulator's: never served, cleaned up or unserved through the CRD.
      if (c_.registry().serve_custom(std::move(info))->custom) serving.push_back(ref);
    }
  }
  // Versions no longer served (or renamed) stop being served.
  for (const auto& old : custom_[name]) {
    bool kept = false;
    for (const auto& now : serving) kept = kept || (now.group == old.group && now.version == old.version && now.resource == old.resource);
    if (!kept) c_.registry().unserve_custom(old.group, old.version, old.resource);
  }
  custom_[name] = serving;
  (void)store.mutate(crds, "", name, [&](Object& o) {
    json::object st = o.contains("status") && o["status"].is_object() ? o["status"].as_object() : json::object();
    json::object accepted{{"plural", plural}, {"singular", singular}, {"kind", kind}, {"listKind", list_kind}};
    if (auto sn = strings_at(v, {"spec", "names", "shortNames"}); !sn.empty()) accepted["shortNames"] = json::value_from(sn);
    if (auto cats = strings_at(v, {"spec", "names", "categories"}); !cats.empty()) accepted["categories"] = json::value_from(cats);
    json::array conds{condition("NamesAccepted", "True", "NoConflicts", "no conflicts found", st),
                      condition("Established", "True", "InitialNamesAccepted", "the initial names have been accepted", st)};
    st["acceptedNames"] = accepted;
    st["conditions"] = conds;
    json::array stored;
    if (const auto* sv = st.if_contains("storedVersions"); sv && sv->is_array()) stored = sv->as_array();
    bool have = storage.empty();
    for (const auto& s : stored) have = have || (s.is_string() && s.as_string() == storage);
    if (!have) stored.push_back(json::string(storage));
    st["storedVersions"] = stored;
    o["status"] = st;
  });
}

// crd_finalizer.go: delete every instance, then drop the finalizer.
void CoreControllers::crd_cleanup(const std::string& name) {
  Store& store = c_.store();
  const ResourceInfo& crds = c_.resource(res::kCustomResourceDefinitions);
  size_t left = 0;
  for (const auto& ref : custom_[name]) {
    const ResourceInfo* info = c_.registry().find(ref.group, ref.version, ref.resource);
    if (!info) continue;
    std::vector<std::pair<std::string, std::string>> items;
    for (const Object* o : store.all(*info)) {
      if (!kube::value_at(*o, {"metadata", "deletionTimestamp"})) {
        items.emplace_back(std::string(kube::str_at(*o, {"metadata", "namespace"})), std::string(kube::str_at(*o, {"metadata", "name"})));
      }
    }
    for (const auto& [ns, n] : items) (void)store.remove(*info, ns, n);
    left += store.all(*info).size();
  }
  (void)store.mutate(crds, "", name, [&](Object& o) {
    json::object st = o.contains("status") && o["status"].is_object() ? o["status"].as_object() : json::object();
    json::array conds;
    if (const auto* old = st.if_contains("conditions"); old && old->is_array()) {
      for (const auto& c : old->as_array()) {
        if (kube::str_at(c, {"type"}) != "Terminating") conds.push_back(c);
      }
    }
    conds.push_back(left ? condition("Terminating", "True", "InstanceDeletionInProgress", "CustomResource deletion is in progress", st)
                         : condition("Terminating", "True", "InstanceDeletionCompleted", "removed all instances", st));
    st["conditions"] = conds;
    o["status"] = st;
  });
  if (left) return;  // back here when the last instance goes
  (void)store.mutate(crds, "", name, [](Object& o) {
    json::array kept;
    for (const auto& f : kube::array_at(o, {"metadata", "finalizers"}) ? *kube::array_at(o, {"metadata", "finalizers"}) : json::array()) {
      if (!(f.is_string() && f.as_string() == kCleanup)) kept.push_back(f);
    }
    if (kept.empty()) o["metadata"].as_object().erase("finalizers");
    else o["metadata"].as_object()["finalizers"] = std::move(kept);
  });
}

// An instance of a CRD being deleted went: maybe the last one.
void CoreControllers::custom_resource_deleted(const ResourceInfo& r) {
  for (const auto& [crd, refs] : custom_) {
    for (const auto& ref : refs) {
      if (ref.group != r.ref.group || ref.resource != r.ref.resource) continue;
      const Object* o = c_.store().find(c_.resource(res::kCustomResourceDefinitions), "", crd);
      if (o && kube::value_at(*o, {"metadata", "deletionTimestamp"})) {
        std::string name = crd;  // crd_cleanup may change custom_
        return crd_cleanup(name);
      }
    }
  }
}

}  // namespace kvb::testcluster
