#include "testcluster/openapi_builtin.h"

#include <boost/json.hpp>

#include <set>
#include <sstream>

namespace kvb::testcluster {
namespace json = boost::json;

namespace {

std::string expand(const std::string& name) {
  static const std::pair<const char*, const char*> kPrefixes[] = {
      {"meta.", "io.k8s.apimachinery.pkg.apis.meta.v1."}, {"core.", "io.k8s.api.core.v1."},
      {"storage.", "io.k8s.api.storage.v1."},             {"snap.", "io.k8s.storage.snapshot.v1."},
      {"kv.", "io.kubevirt.v1."},                         {"cdi.", "io.kubevirt.cdi.v1beta1."}};
  for (const auto& [p, full] : kPrefixes) {
    if (name.rfind(p, 0) == 0) return full + name.substr(std::string(p).size());
  }
  return name;
}

bool scalar(const std::string& t) {
  return t == "string" || t == "integer" || t == "boolean" || t == "number" || t == "time" || t == "quantity";
}

BuiltinSchemas parse_table() {
  BuiltinSchemas out;
  std::istringstream in(builtin_schema_table());
  std::string line;
  SchemaType* cur = nullptr;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto colon = line.find(": ");
    if (colon == std::string::npos) {
      out.errors.push_back(line);
      continue;
    }
    std::istringstream head(line.substr(0, colon));
    std::string description = line.substr(colon + 2);
    if (line[0] == '@') {
      std::string name, word;
      head >> name;
      SchemaType t;
      t.name = expand(name.substr(1));
      t.description = description;
      while (head >> word) {
        if (word == "+open") {
          t.open = true;
          continue;
        }
        auto last = word.rfind('/');
        auto first = word.find('/');
        if (last == std::string::npos) {
          out.errors.push_back(line);
          continue;
        }
        t.kind = word.substr(last + 1);
        if (first == last) {
          t.version = word.substr(0, first);
        } else {
          t.group = word.substr(0, first);
          t.version = word.substr(first + 1, last - first - 1);
        }
      }
      cur = &(out.types[t.name] = t);
      continue;
    }
    std::string name, type;
    if (!cur || line.rfind("  ", 0) != 0 || !(head >> name >> type)) {
      out.errors.push_back(line);
      continue;
    }
    cur->fields.push_back({name, type, description});
  }
  // Every referenced type must be in the table.
  for (const auto& [n, t] : out.types) {
    for (const auto& f : t.fields) {
      std::string base = f.type;
      while (base.rfind("[]", 0) == 0) base = base.substr(2);
      if (scalar(base) || base == "object" || base.rfind("map:", 0) == 0) continue;
      if (!out.types.count(expand(base))) out.errors.push_back(n + "." + f.name + ": unknown type " + base);
    }
  }
  return out;
}

const char* kQuantity = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const char* kTime = "io.k8s.apimachinery.pkg.apis.meta.v1.Time";

json::object ref_to(const std::string& name) {
  return json::object{{"allOf", json::array{json::object{{"$ref", "#/components/schemas/" + name}}}}};
}

// The schema of a field type; `uses` collects the named types it refers to.
json::object type_schema(const std::string& field, const std::string& type, std::set<std::string>& uses) {
  if (type.rfind("[]", 0) == 0) {
    json::object a{{"type", "array"}, {"items", type_schema("", type.substr(2), uses)}};
    if (field == "finalizers") a["x-kubernetes-list-type"] = "set";
    if (const auto* keys = list_map_keys(field)) {
      json::array k;
      for (const auto& key : *keys) k.push_back(json::string(key));
      a["x-kubernetes-list-type"] = "map";
      a["x-kubernetes-list-map-keys"] = k;
      a["x-kubernetes-patch-merge-key"] = (*keys)[0];
      a["x-kubernetes-patch-strategy"] = "merge";
    }
    return a;
  }
  if (type == "string") return {{"type", "string"}};
  if (type == "integer") return {{"type", "integer"}, {"format", "int64"}};
  if (type == "boolean") return {{"type", "boolean"}};
  if (type == "number") return {{"type", "number"}, {"format", "double"}};
  if (type == "object") return {{"type", "object"}, {"x-kubernetes-preserve-unknown-fields", true}};
  if (type == "time") {
    uses.insert(kTime);
    return ref_to(kTime);
  }
  if (type == "quantity") {
    uses.insert(kQuantity);
    return ref_to(kQuantity);
  }
  if (type.rfind("map:", 0) == 0) {
    return {{"type", "object"}, {"additionalProperties", type_schema("", type.substr(4), uses)}};
  }
  std::string name = expand(type);
  uses.insert(name);
  return ref_to(name);
}

json::object object_schema(const SchemaType& t, std::set<std::string>& uses) {
  json::object props;
  if (!t.kind.empty()) {
    props["apiVersion"] = json::object{{"type", "string"}, {"description", "Versioned schema of this representation of the object."}};
    props["kind"] = json::object{{"type", "string"}, {"description", "The REST resource this object represents."}};
  }
  for (const auto& f : t.fields) {
    json::object p = type_schema(f.name, f.type, uses);
    p["description"] = f.description;
    props[f.name] = std::move(p);
  }
  json::object s{{"type", "object"}, {"description", t.description}, {"properties", std::move(props)}};
  if (t.open) s["x-kubernetes-preserve-unknown-fields"] = true;
  if (!t.kind.empty()) {
    s["x-kubernetes-group-version-kind"] =
        json::array{json::object{{"group", t.group}, {"version", t.version}, {"kind", t.kind}}};
  }
  return s;
}

std::string item_label(const json::value& item, const std::string& field, size_t index, PathStyle style) {
  const auto* keys = list_map_keys(field);
  if (style == PathStyle::kDecoder || !keys || !item.is_object()) return "[" + std::to_string(index) + "]";
  std::string inner;
  for (const auto& k : *keys) {
    const auto* v = item.as_object().if_contains(k);
    if (!v) continue;
    inner += (inner.empty() ? "" : ",") + k + "=" + json::serialize(*v);
  }
  return "[" + inner + "]";
}

void walk(const std::string& type, json::value& v, const std::string& path, const std::string& field, bool prune,
          PathStyle style, std::vector<std::string>& out);

void walk_object(const SchemaType& t, json::object& o, const std::string& path, bool prune, PathStyle style,
                 std::vector<std::string>& out) {
  std::vector<std::string> drop;
  for (auto& [k, v] : o) {
    std::string key(k);
    std::string child = style == PathStyle::kDecoder ? (path.empty() ? key : path + "." + key) : path + "." + key;
    if (!t.kind.empty() && (key == "apiVersion" || key == "kind")) continue;
    const SchemaField* f = t.field(key);
    if (!f) {
      if (t.open) continue;
      out.push_back(child);
      drop.push_back(key);
      continue;
    }
    walk(f->type, v, child, key, prune, style, out);
  }
  if (prune) {
    for (const auto& k : drop) o.erase(k);
  }
}

void walk(const std::string& type, json::value& v, const std::string& path, const std::string& field, bool prune,
          PathStyle style, std::vector<std::string>& out) {
  if (type.rfind("[]", 0) == 0) {
    if (!v.is_array()) return;
    size_t i = 0;
    for (auto& item : v.as_array()) {
      walk(type.substr(2), item, path + item_label(item, field, i, style), "", prune, style, out);
      ++i;
    }
    return;
  }
  if (scalar(type) || type == "object" || type.rfind("map:", 0) == 0 || !v.is_object()) return;
  const auto& types = builtin_schemas().types;
  auto it = types.find(expand(type));
  if (it != types.end()) walk_object(it->second, v.as_object(), path, prune, style, out);
}

}  // namespace

const SchemaField* SchemaType::field(const std::string& n) const {
  for (const auto& f : fields) {
    if (f.name == n) return &f;
  }
  return nullptr;
}

const SchemaType* BuiltinSchemas::for_kind(const std::string& group, const std::string& version, const std::string& kind) const {
  for (const auto& [n, t] : types) {
    if (t.kind == kind && t.group == group && t.version == version) return &t;
  }
  return nullptr;
}

const BuiltinSchemas& builtin_schemas() {
  static const BuiltinSchemas s = parse_table();
  return s;
}

const std::vector<std::string>* list_map_keys(const std::string& field) {
  static const std::map<std::string, std::vector<std::string>> kKeys{
      {"containers", {"name"}},     {"initContainers", {"name"}},     {"ephemeralContainers", {"name"}},
      {"volumes", {"name"}},        {"env", {"name"}},                {"imagePullSecrets", {"name"}},
      {"resourceClaims", {"name"}}, {"volumeMounts", {"mountPath"}},  {"volumeDevices", {"devicePath"}},
      {"ports", {"containerPort", "protocol"}}, {"conditions", {"type"}}, {"hostAliases", {"ip"}}};
  auto it = kKeys.find(field);
  return it == kKeys.end() ? nullptr : &it->second;
}

void add_builtin_schemas(const std::string& gv_path, json::object& schemas) {
  const auto& all = builtin_schemas().types;
  std::set<std::string> todo;
  for (const auto& [n, t] : all) {
    if (t.kind.empty()) continue;
    std::string p = t.group.empty() ? "api/" + t.version : "apis/" + t.group + "/" + t.version;
    if (p == gv_path) todo.insert(n);
  }
  std::set<std::string> done;
  while (!todo.empty()) {
    std::string n = *todo.begin();
    todo.erase(todo.begin());
    if (!done.insert(n).second) continue;
    std::set<std::string> uses;
    if (n == kQuantity) {
      schemas[n] = json::object{{"description", "A fixed-point number with a suffix: 1Gi, 500m, 10G."},
                                {"oneOf", json::array{json::object{{"type", "string"}}, json::object{{"type", "number"}}}}};
    } else if (n == kTime) {
      schemas[n] = json::object{{"description", "A time stamp in RFC 3339 form."}, {"type", "string"}, {"format", "date-time"}};
    } else if (auto it = all.find(n); it != all.end()) {
      schemas[n] = object_schema(it->second, uses);
    }
    for (const auto& u : uses) {
      if (!done.count(u)) todo.insert(u);
    }
  }
}

std::vector<std::string> unknown_fields(const ResourceInfo& r, json::object& obj, bool prune, PathStyle style) {
  std::vector<std::string> out;
  const SchemaType* t = builtin_schemas().for_kind(r.ref.group, r.ref.version, r.ref.kind);
  if (t) walk_object(*t, obj, "", prune, style, out);
  return out;
}

}  // namespace kvb::testcluster
