#include "kube/object.h"

namespace kvb::kube {
namespace json = boost::json;

const json::value* value_at(const json::value& v, Path path) {
  const json::value* cur = &v;
  for (std::string_view key : path) {
    const json::object* o = cur->if_object();
    if (!o) return nullptr;
    cur = o->if_contains(key);
    if (!cur) return nullptr;
  }
  return cur;
}

const json::value* value_at(const json::object& o, Path path) {
  if (path.size() == 0) return nullptr;
  auto it = path.begin();
  const json::value* cur = o.if_contains(*it);
  for (++it; cur && it != path.end(); ++it) {
    const json::object* next = cur->if_object();
    cur = next ? next->if_contains(*it) : nullptr;
  }
  return cur;
}

namespace {
template <class T>
std::string_view str_of(const json::value* p) {
  if (!p || !p->is_string()) return {};
  const json::string& s = p->get_string();
  return {s.data(), s.size()};
}
std::optional<int64_t> int_of(const json::value* p) {
  if (!p) return std::nullopt;
  if (p->is_int64()) return p->get_int64();
  if (p->is_uint64()) return static_cast<int64_t>(p->get_uint64());
  return std::nullopt;
}
}  // namespace

const json::object* object_at(const json::object& o, Path path) {
  const json::value* p = value_at(o, path);
  return p ? p->if_object() : nullptr;
}
const json::array* array_at(const json::object& o, Path path) {
  const json::value* p = value_at(o, path);
  return p ? p->if_array() : nullptr;
}
std::string_view str_at(const json::object& o, Path path) { return str_of<void>(value_at(o, path)); }
std::optional<int64_t> int_at(const json::object& o, Path path) { return int_of(value_at(o, path)); }
std::optional<bool> bool_at(const json::object& o, Path path) {
  const json::value* p = value_at(o, path);
  if (!p || !p->is_bool()) return std::nullopt;
  return p->get_bool();
}

std::string_view name_of(const json::object& o) { return str_at(o, {"metadata", "name"}); }
std::string_view namespace_of(const json::object& o) { return str_at(o, {"metadata", "namespace"}); }
std::string_view uid_of(const json::object& o) { return str_at(o, {"metadata", "uid"}); }
std::string_view resource_version_of(const json::object& o) { return str_at(o, {"metadata", "resourceVersion"}); }
std::string_view annotation_of(const json::object& o, std::string_view key) { return str_at(o, {"metadata", "annotations", key}); }
std::string_view label_of(const json::object& o, std::string_view key) { return str_at(o, {"metadata", "labels", key}); }

const json::object* object_at(const json::value& v, Path path) {
  const json::value* p = value_at(v, path);
  return p ? p->if_object() : nullptr;
}

const json::array* array_at(const json::value& v, Path path) {
  const json::value* p = value_at(v, path);
  return p ? p->if_array() : nullptr;
}

std::string_view str_at(const json::value& v, Path path) {
  const json::value* p = value_at(v, path);
  if (!p || !p->is_string()) return {};
  const json::string& s = p->get_string();
  return {s.data(), s.size()};
}

std::optional<int64_t> int_at(const json::value& v, Path path) {
  const json::value* p = value_at(v, path);
  if (!p) return std::nullopt;
  if (p->is_int64()) return p->get_int64();
  if (p->is_uint64()) return static_cast<int64_t>(p->get_uint64());
  return std::nullopt;
}

std::optional<bool> bool_at(const json::value& v, Path path) {
  const json::value* p = value_at(v, path);
  if (!p || !p->is_bool()) return std::nullopt;
  return p->get_bool();
}

std::string_view name_of(const json::value& obj) { return str_at(obj, {"metadata", "name"}); }
std::string_view namespace_of(const json::value& obj) { return str_at(obj, {"metadata", "namespace"}); }
std::string_view uid_of(const json::value& obj) { return str_at(obj, {"metadata", "uid"}); }
std::string_view resource_version_of(const json::value& obj) { return str_at(obj, {"metadata", "resourceVersion"}); }

namespace {
std::map<std::string, std::string> string_map(const json::object* o) {
  std::map<std::string, std::string> out;
  if (!o) return out;
  for (const auto& [k, v] : *o) {
    if (v.is_string()) out.emplace(std::string(k), std::string(v.get_string()));
  }
  return out;
}
}  // namespace

std::map<std::string, std::string> labels_of(const json::object& obj) {
  return string_map(object_at(obj, {"metadata", "labels"}));
}
std::map<std::string, std::string> annotations_of(const json::object& obj) {
  return string_map(object_at(obj, {"metadata", "annotations"}));
}

std::map<std::string, std::string> labels_of(const json::value& obj) {
  return string_map(object_at(obj, {"metadata", "labels"}));
}
std::map<std::string, std::string> annotations_of(const json::value& obj) {
  return string_map(object_at(obj, {"metadata", "annotations"}));
}
std::string_view annotation_of(const json::value& obj, std::string_view key) {
  return str_at(obj, {"metadata", "annotations", key});
}
std::string_view label_of(const json::value& obj, std::string_view key) {
  return str_at(obj, {"metadata", "labels", key});
}

std::string key_of(const json::object& obj) {
  std::string_view ns = namespace_of(obj);
  std::string out;
  if (!ns.empty()) {
    out.append(ns);
    out += '/';
  }
  out.append(name_of(obj));
  return out;
}

std::string key_of(const json::value& obj) {
  std::string_view ns = namespace_of(obj);
  std::string out;
  if (!ns.empty()) {
    out.append(ns);
    out += '/';
  }
  out.append(name_of(obj));
  return out;
}

}  // namespace kvb::kube
