#include "testcluster/tables.h"

#include "common/time.h"
#include "kube/object.h"

#include <boost/json.hpp>

#include <cctype>
#include <functional>

namespace kvb::testcluster {
namespace json = boost::json;

namespace {

struct Column {
  std::string name, type, description;
  int priority = 0;
  std::function<json::value(const Object&)> cell;
};

std::string str(const Object& o, std::initializer_list<std::string_view> path) { return std::string(kube::str_at(o, path)); }

}  // namespace

std::string human_age(const std::string& ts) {
  auto t = parse_rfc3339(ts);
  if (!t) return "<unknown>";
  int64_t s = std::chrono::duration_cast<std::chrono::seconds>(WallClock::now() - *t).count();
  if (s < 0) s = 0;
  auto n = [](int64_t v) { return std::to_string(v); };
  if (s < 120) return n(s) + "s";
  int64_t m = s / 60, h = s / 3600, d = s / 86400;
  if (m < 10) return s % 60 == 0 ? n(m) + "m" : n(m) + "m" + n(s % 60) + "s";
  if (m < 180) return n(m) + "m";
  if (h < 8) return m % 60 == 0 ? n(h) + "h" : n(h) + "h" + n(m % 60) + "m";
  if (h < 48) return n(h) + "h";
  if (h < 192) return h % 24 == 0 ? n(d) + "d" : n(d) + "d" + n(h % 24) + "h";
  if (d < 365 * 2) return n(d) + "d";
  return n(d / 365) + "y" + n(d % 365) + "d";
}

namespace {

json::value path_cell(const Object& o, std::initializer_list<std::string_view> path) {
  const json::value* v = kube::value_at(o, path);
  return v ? *v : json::value(nullptr);
}

json::value condition_status(const Object& o, const std::string& type) {
  if (const auto* conds = kube::array_at(o, {"status", "conditions"})) {
    for (const auto& c : *conds) {
      if (kube::str_at(c, {"type"}) == type) return json::string(kube::str_at(c, {"status"}));
    }
  }
  return nullptr;
}

Column age() {
  return {"Age", "date", "", 0, [](const Object& o) -> json::value { return json::string(human_age(str(o, {"metadata", "creationTimestamp"}))); }};
}
Column builtin_age() {
  return {"Age", "string", "CreationTimestamp is a timestamp representing the server time when this object was created.", 0,
          [](const Object& o) -> json::value { return json::string(human_age(str(o, {"metadata", "creationTimestamp"}))); }};
}
Column text(std::string name, std::initializer_list<std::string_view> path, int priority = 0, std::string type = "string") {
  std::vector<std::string> p(path.begin(), path.end());
  return {std::move(name), std::move(type), "", priority, [p](const Object& o) -> json::value {
            json::value holder(o);
            const json::value* v = &holder;
            for (const auto& k : p) {
              if (!v->is_object()) return nullptr;
              auto* next = v->as_object().if_contains(k);
              if (!next) return nullptr;
              v = next;
            }
            return *v;
          }};
}

std::string access_modes(const Object& o) {
  std::string out;
  if (const auto* modes = kube::array_at(o, {"status", "accessModes"})) {
    for (const auto& m : *modes) {
      std::string s(m.as_string());
      std::string a = s == "ReadWriteOnce" ? "RWO" : s == "ReadOnlyMany" ? "ROX" : s == "ReadWriteMany" ? "RWX" : s == "ReadWriteOncePod" ? "RWOP" : s;
      out += (out.empty() ? "" : ",") + a;
    }
  }
  return out;
}

std::vector<Column> columns_for(const ResourceInfo& r) {
  const std::string& g = r.ref.group;
  const std::string& res = r.ref.resource;
  std::vector<Column> cols;
  if (g == "kubevirt.io" && res == "virtualmachines") {
    // kubevirt pkg/virt-operator/resource/generate/components/crds.go
    cols = {age(), text("Status", {"status", "printableStatus"}),
            {"Ready", "string", "", 0, [](const Object& o) { return condition_status(o, "Ready"); }}};
    cols[1].description = "Human Readable Status";
  } else if (g == "kubevirt.io" && res == "virtualmachineinstances") {
    cols = {age(), text("Phase", {"status", "phase"}),
            {"IP", "string", "", 0,
             [](const Object& o) -> json::value {
               const auto* ifs = kube::array_at(o, {"status", "interfaces"});
               if (!ifs || ifs->empty()) return nullptr;
               return path_cell((*ifs)[0].as_object(), {"ipAddress"});
             }},
            text("NodeName", {"status", "nodeName"}),
            {"Ready", "string", "", 0, [](const Object& o) { return condition_status(o, "Ready"); }},
            {"Live-Migratable", "string", "", 1, [](const Object& o) { return condition_status(o, "LiveMigratable"); }},
            {"Paused", "string", "", 1, [](const Object& o) { return condition_status(o, "Paused"); }}};
  } else if (g == "cdi.kubevirt.io" && res == "datavolumes") {
    // CDI pkg/operator/resources/cluster/datavolume.go
    cols = {text("Phase", {"status", "phase"}), text("Progress", {"status", "progress"}),
            text("Restarts", {"status", "restartCount"}, 0, "integer"), age()};
    cols[0].description = "The phase the data volume is in";
    cols[1].description = "Transfer progress in percentage if known, N/A otherwise";
    cols[2].description = "The number of times the transfer has been restarted.";
  } else if (res == "volumesnapshots") {
    // external-snapshotter client/config/crd/snapshot.storage.k8s.io_volumesnapshots.yaml
    cols = {text("ReadyToUse", {"status", "readyToUse"}, 0, "boolean"),
            text("SourcePVC", {"spec", "source", "persistentVolumeClaimName"}),
            text("SourceSnapshotContent", {"spec", "source", "volumeSnapshotContentName"}),
            text("RestoreSize", {"status", "restoreSize"}),
            text("SnapshotClass", {"spec", "volumeSnapshotClassName"}),
            text("SnapshotContent", {"status", "boundVolumeSnapshotContentName"}),
            {"CreationTime", "date", "", 0,
             [](const Object& o) -> json::value {
               std::string t = str(o, {"status", "creationTime"});
               return t.empty() ? json::value(nullptr) : json::value(json::string(human_age(t)));
             }},
            age()};
  } else if (res == "volumesnapshotcontents") {
    cols = {text("ReadyToUse", {"status", "readyToUse"}, 0, "boolean"), text("RestoreSize", {"status", "restoreSize"}, 0, "integer"),
            text("DeletionPolicy", {"spec", "deletionPolicy"}), text("Driver", {"spec", "driver"}),
            text("VolumeSnapshotClass", {"spec", "volumeSnapshotClassName"}),
            text("VolumeSnapshot", {"spec", "volumeSnapshotRef", "name"}),
            text("VolumeSnapshotNamespace", {"spec", "volumeSnapshotRef", "namespace"}), age()};
  } else if (res == "volumesnapshotclasses") {
    cols = {text("Driver", {"driver"}), text("DeletionPolicy", {"deletionPolicy"}), age()};
  } else if (g.empty() && res == "persistentvolumeclaims") {
    // kubernetes pkg/printers/internalversion/printers.go: printPersistentVolumeClaim
    cols = {{"Status", "string", "", 0,
             [](const Object& o) -> json::value {
               return json::string(kube::value_at(o, {"metadata", "deletionTimestamp"}) ? "Terminating" : str(o, {"status", "phase"}));
             }},
            text("Volume", {"spec", "volumeName"}),
            {"Capacity", "string", "", 0, [](const Object& o) -> json::value { return json::string(str(o, {"status", "capacity", "storage"})); }},
            {"Access Modes", "string", "", 0, [](const Object& o) -> json::value { return json::string(access_modes(o)); }},
            {"StorageClass", "string", "", 0, [](const Object& o) -> json::value { return json::string(str(o, {"spec", "storageClassName"})); }},
            {"VolumeAttributesClass", "string", "", 0,
             [](const Object& o) -> json::value {
               std::string v = str(o, {"spec", "volumeAttributesClassName"});
               return json::string(v.empty() ? "<unset>" : v);
             }},
            builtin_age(),
            {"VolumeMode", "string", "", 1, [](const Object& o) -> json::value { return json::string(str(o, {"spec", "volumeMode"})); }}};
  } else if (g.empty() && res == "pods") {
    // printPod
    cols = {{"Ready", "string", "", 0,
             [](const Object& o) -> json::value {
               size_t total = 0, ready = 0;
               if (const auto* c = kube::array_at(o, {"spec", "containers"})) total = c->size();
               if (const auto* cs = kube::array_at(o, {"status", "containerStatuses"})) {
                 for (const auto& s : *cs) ready += kube::bool_at(s, {"ready"}).value_or(false) ? 1 : 0;
               }
               return json::string(std::to_string(ready) + "/" + std::to_string(total));
             }},
            {"Status", "string", "", 0,
             [](const Object& o) -> json::value {
               if (kube::value_at(o, {"metadata", "deletionTimestamp"})) return json::string("Terminating");
               std::string reason = str(o, {"status", "reason"});
               if (!reason.empty()) return json::string(reason);
               if (const auto* cs = kube::array_at(o, {"status", "containerStatuses"})) {
                 for (const auto& s : *cs) {
                   std::string w(kube::str_at(s, {"state", "waiting", "reason"}));
                   if (!w.empty()) return json::string(w);
                   std::string t(kube::str_at(s, {"state", "terminated", "reason"}));
                   if (!t.empty() && str(o, {"status", "phase"}) != "Running") return json::string(t);
                 }
               }
               return json::string(str(o, {"status", "phase"}));
             }},
            {"Restarts", "string", "", 0,
             [](const Object& o) -> json::value {
               int64_t n = 0;
               if (const auto* cs = kube::array_at(o, {"status", "containerStatuses"})) {
                 for (const auto& s : *cs) n += kube::int_at(s, {"restartCount"}).value_or(0);
               }
               return json::string(std::to_string(n));
             }},
            builtin_age(),
            {"IP", "string", "", 1, [](const Object& o) -> json::value {
               std::string ip = str(o, {"status", "podIP"});
               return json::string(ip.empty() ? "<none>" : ip);
             }},
            {"Node", "string", "", 1, [](const Object& o) -> json::value {
               std::string n = str(o, {"spec", "nodeName"});
               return json::string(n.empty() ? "<none>" : n);
             }},
            {"Nominated Node", "string", "", 1, [](const Object&) -> json::value { return json::string("<none>"); }},
            {"Readiness Gates", "string", "", 1, [](const Object&) -> json::value { return json::string("<none>"); }}};
  } else if (g.empty() && res == "namespaces") {
    cols = {{"Status", "string", "", 0, [](const Object& o) -> json::value { return json::string(str(o, {"status", "phase"})); }},
            builtin_age()};
  } else if (g.empty() && res == "nodes") {
    cols = {{"Status", "string", "", 0, [](const Object& o) { return json::value(condition_status(o, "Ready") == "True" ? "Ready" : "NotReady"); }},
            {"Roles", "string", "", 0, [](const Object&) -> json::value { return json::string("<none>"); }},
            builtin_age(),
            {"Version", "string", "", 0, [](const Object& o) -> json::value { return json::string(str(o, {"status", "nodeInfo", "kubeletVersion"})); }}};
  } else if (g.empty() && res == "secrets") {
    cols = {{"Type", "string", "", 0, [](const Object& o) -> json::value {
               std::string t = str(o, {"type"});
               return json::string(t.empty() ? "Opaque" : t);
             }},
            {"Data", "integer", "", 0, [](const Object& o) -> json::value {
               const auto* d = kube::object_at(o, {"data"});
               return static_cast<int64_t>(d ? d->size() : 0);
             }},
            builtin_age()};
  } else if (g.empty() && res == "configmaps") {
    cols = {{"Data", "integer", "", 0, [](const Object& o) -> json::value {
               const auto* d = kube::object_at(o, {"data"});
               const auto* b = kube::object_at(o, {"binaryData"});
               return static_cast<int64_t>((d ? d->size() : 0) + (b ? b->size() : 0));
             }},
            builtin_age()};
  } else if (res == "storageclasses") {
    cols = {text("Provisioner", {"provisioner"}), text("ReclaimPolicy", {"reclaimPolicy"}),
            text("VolumeBindingMode", {"volumeBindingMode"}),
            {"AllowVolumeExpansion", "string", "", 0, [](const Object& o) -> json::value {
               return json::string(kube::bool_at(o, {"allowVolumeExpansion"}).value_or(false) ? "true" : "false");
             }},
            builtin_age()};
  } else if (g.empty() && res == "events") {
    // printEvent: the object's name is a wide column.
    auto stamp = [](const Object& o) {
      std::string t = str(o, {"lastTimestamp"});
      if (t.empty()) t = str(o, {"eventTime"});
      if (t.empty()) t = str(o, {"metadata", "creationTimestamp"});
      return t;
    };
    cols = {{"Last Seen", "string", "", 0, [stamp](const Object& o) -> json::value { return json::string(human_age(stamp(o))); }},
            text("Type", {"type"}), text("Reason", {"reason"}),
            {"Object", "string", "", 0,
             [](const Object& o) -> json::value {
               std::string kind = str(o, {"involvedObject", "kind"});
               for (auto& ch : kind) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
               return json::string(kind + "/" + str(o, {"involvedObject", "name"}));
             }},
            text("Subobject", {"involvedObject", "fieldPath"}, 1),
            {"Source", "string", "", 1, [](const Object& o) -> json::value { return json::string(str(o, {"source", "component"})); }},
            text("Message", {"message"}),
            {"First Seen", "string", "", 1, [](const Object& o) -> json::value { return json::string(human_age(str(o, {"firstTimestamp"}))); }},
            text("Count", {"count"}, 1, "integer"),
            {"Name", "string", "", 1, [](const Object& o) -> json::value { return json::string(str(o, {"metadata", "name"})); }}};
  } else {
    cols = {age()};
  }
  return cols;
}

}  // namespace

bool wants_table(const ServerRequest& req) { return req.header("Accept").find("as=Table") != std::string::npos; }

json::object to_table(const ResourceInfo& r, const std::vector<Object>& items, const std::string& rv,
                      const std::string& continue_token, const std::string& include_object) {
  std::vector<Column> cols = columns_for(r);
  // Events print their name as a wide column of their own; every other kind leads with it.
  bool name_first = !(r.ref.group.empty() && r.ref.resource == "events");
  json::array defs;
  if (name_first) defs.push_back(json::object{{"name", "Name"},
                                {"type", "string"},
                                {"format", "name"},
                                {"description", "Name must be unique within a namespace. More info: "
                                                "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"},
                                {"priority", 0}});
  for (const auto& c : cols) {
    defs.push_back(json::object{{"name", c.name}, {"type", c.type}, {"format", ""}, {"description", c.description}, {"priority", c.priority}});
  }
  json::array rows;
  for (const auto& o : items) {
    json::array cells;
    if (name_first) cells.push_back(json::string(str(o, {"metadata", "name"})));
    for (const auto& c : cols) cells.push_back(c.cell(o));
    json::object row{{"cells", cells}};
    if (include_object == "Object") {
      row["object"] = o;
    } else if (include_object != "None") {
      json::object m;
      if (const auto* meta = kube::object_at(o, {"metadata"})) m = *meta;
      m.erase("managedFields");
      row["object"] = json::object{{"kind", "PartialObjectMetadata"}, {"apiVersion", "meta.k8s.io/v1"}, {"metadata", m}};
    }
    rows.push_back(row);
  }
  json::object meta{{"resourceVersion", rv}};
  if (!continue_token.empty()) meta["continue"] = continue_token;
  return json::object{{"kind", "Table"}, {"apiVersion", "meta.k8s.io/v1"}, {"metadata", meta}, {"columnDefinitions", defs}, {"rows", rows}};
}

}  // namespace kvb::testcluster
