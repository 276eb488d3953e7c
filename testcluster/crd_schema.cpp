#include "testcluster/crd_schema.h"

#include <boost/json.hpp>

#include <charconv>
#include <cmath>
#include <regex>
#include <set>

namespace kvb::testcluster::crd {
namespace json = boost::json;

namespace {

const json::object* obj_of(const json::object& s, std::string_view key) {
  const auto* v = s.if_contains(key);
  return v && v->is_object() ? &v->as_object() : nullptr;
}

bool flag(const json::object& s, std::string_view key) {
  const auto* v = s.if_contains(key);
  return v && v->is_bool() && v->as_bool();
}

std::string str_of(const json::object& s, std::string_view key) {
  const auto* v = s.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

std::optional<double> num_of(const json::object& s, std::string_view key) {
  const auto* v = s.if_contains(key);
  if (!v || !v->is_number()) return std::nullopt;
  return v->to_number<double>();
}

std::string child(const std::string& path, std::string_view key) { return path.empty() ? std::string(key) : path + "." + std::string(key); }
std::string index(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

bool integral(const json::value& v) {
  if (v.is_int64() || v.is_uint64()) return true;
  return v.is_double() && std::isfinite(v.as_double()) && std::floor(v.as_double()) == v.as_double();
}

// kube-openapi's name for the JSON type of a value.
std::string type_of(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null: return "null";
    case json::kind::bool_: return "boolean";
    case json::kind::int64:
    case json::kind::uint64: return "integer";
    case json::kind::double_: return integral(v) ? "integer" : "number";
    case json::kind::string: return "string";
    case json::kind::array: return "array";
    case json::kind::object: return "object";
  }
  return "unknown";
}

std::string number_text(double d) {
  if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 1e21) return std::to_string(static_cast<int64_t>(d));
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, res.ptr);
}

std::string quoted(std::string_view s) { return json::serialize(json::string(s)); }

size_t runes(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// strfmt's checks for the formats that are cheap to recognise; others pass.
bool format_ok(const std::string& format, const std::string& v) {
  static const std::regex kDateTime(R"(^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$)");
  static const std::regex kDate(R"(^\d{4}-\d{2}-\d{2}$)");
  static const std::regex kUuid(R"(^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$)");
  static const std::regex kByte(R"(^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$)");
  if (format == "date-time") return std::regex_match(v, kDateTime);
  if (format == "date") return std::regex_match(v, kDate);
  if (format == "uuid") return std::regex_match(v, kUuid);
  if (format == "byte") return std::regex_match(v, kByte);
  return true;
}

class Validator {
 public:
  explicit Validator(std::vector<std::string>& errs) : errs_(errs) {}

  void node(const json::value& v, const json::object& s, const std::string& path, bool root, Part part) {
    bool int_or_string = flag(s, "x-kubernetes-int-or-string");
    std::vector<std::string> types;
    if (int_or_string) types = {"integer", "string"};
    else if (auto t = str_of(s, "type"); !t.empty()) types = {t};
    std::string joined;
    for (const auto& t : types) joined += (joined.empty() ? "" : ",") + t;
    std::string actual = type_of(v);
    if (v.is_null()) {
      if (!types.empty() && !flag(s, "nullable")) type_error(path, joined, "null");
      return;
    }
    if (!types.empty()) {
      bool fits = false;
      for (const auto& t : types) fits = fits || t == actual || (t == "number" && actual == "integer");
      if (!fits) return type_error(path, joined, actual);
    }
    if (v.is_string()) string_checks(std::string(v.as_string()), s, path);
    if (const auto* e = s.if_contains("enum"); e && e->is_array()) enum_check(v, e->as_array(), path);
    if (v.is_array()) array_checks(v.as_array(), s, path);
    if (v.is_number()) number_checks(v, s, path);
    if (v.is_object()) object_checks(v.as_object(), s, path, root, part);
  }

 private:
  void add(std::string e) { errs_.push_back(std::move(e)); }
  void invalid(const std::string& path, const std::string& value, const std::string& detail) {
    add(path + ": Invalid value: " + value + ": " + detail);
  }
  void type_error(const std::string& path, const std::string& want, const std::string& actual) {
    invalid(path, quoted(actual), path + " in body must be of type " + want + ": " + quoted(actual));
  }

  void string_checks(const std::string& v, const json::object& s, const std::string& path) {
    if (auto max = num_of(s, "maxLength"); max && runes(v) > *max) {
      add(path + ": Too long: may not be longer than " + number_text(*max));
    }
    if (auto min = num_of(s, "minLength"); min && runes(v) < *min) {
      invalid(path, quoted(v), path + " in body should be at least " + number_text(*min) + " chars long");
    }
    if (auto pattern = str_of(s, "pattern"); !pattern.empty()) {
      try {
        if (!std::regex_search(v, std::regex(pattern))) invalid(path, quoted(v), path + " in body should match '" + pattern + "'");
      } catch (const std::regex_error&) {
        // A pattern std::regex cannot read is not checked (RE2 and ECMAScript differ at the edges).
      }
    }
    if (auto format = str_of(s, "format"); !format.empty() && !format_ok(format, v)) {
      invalid(path, quoted(v), path + " in body must be of type " + format + ": " + quoted(v));
    }
  }

  void enum_check(const json::value& v, const json::array& allowed, const std::string& path) {
    for (const auto& a : allowed) {
      if (a == v || (a.is_number() && v.is_number() && a.to_number<double>() == v.to_number<double>())) return;
    }
    std::string values;
    for (const auto& a : allowed) {
      values += (values.empty() ? "" : ", ") + quoted(a.is_string() ? std::string(a.as_string()) : json::serialize(a));
    }
    add(path + ": Unsupported value: " + go_value(v) + ": supported values: " + values);
  }

  void number_checks(const json::value& v, const json::object& s, const std::string& path) {
    double d = v.to_number<double>();
    if (auto max = num_of(s, "maximum")) {
      bool excl = flag(s, "exclusiveMaximum");
      if (excl ? d >= *max : d > *max) {
        invalid(path, go_value(v), path + " in body should be less than " + (excl ? "" : "or equal to ") + number_text(*max));
      }
    }
    if (auto min = num_of(s, "minimum")) {
      bool excl = flag(s, "exclusiveMinimum");
      if (excl ? d <= *min : d < *min) {
        invalid(path, go_value(v), path + " in body should be greater than " + (excl ? "" : "or equal to ") + number_text(*min));
      }
    }
    if (auto m = num_of(s, "multipleOf"); m && *m > 0 && std::fmod(d, *m) != 0) {
      invalid(path, go_value(v), path + " in body should be a multiple of " + number_text(*m));
    }
  }

  void array_checks(const json::array& a, const json::object& s, const std::string& path) {
    if (auto max = num_of(s, "maxItems"); max && a.size() > *max) {
      add(path + ": Too many: " + std::to_string(a.size()) + ": must have at most " + number_text(*max) + " items");
    }
    if (auto min = num_of(s, "minItems"); min && a.size() < *min) {
      invalid(path, std::to_string(a.size()), path + " in body should have at least " + number_text(*min) + " items");
    }
    if (const auto* items = obj_of(s, "items")) {
      for (size_t i = 0; i < a.size(); ++i) node(a[i], *items, index(path, i), flag(*items, "x-kubernetes-embedded-resource"), Part::kAll);
    }
  }

  void object_checks(const json::object& o, const json::object& s, const std::string& path, bool resource, Part part) {
    auto included = [&](std::string_view key) {
      if (!path.empty()) return true;
      if (part == Part::kStatusOnly) return key == "status";
      if (part == Part::kAllButStatus) return key != "status";
      return true;
    };
    if (resource && !path.empty()) {
      // objectmeta validateEmbeddedResource: an embedded object names its type.
      if (!o.contains("apiVersion")) add(child(path, "apiVersion") + ": Required value: must not be empty");
      if (!o.contains("kind")) add(child(path, "kind") + ": Required value: must not be empty");
    }
    if (auto max = num_of(s, "maxProperties"); max && o.size() > *max) {
      add(path + ": Too many: " + std::to_string(o.size()) + ": must have at most " + number_text(*max) + " items");
    }
    if (auto min = num_of(s, "minProperties"); min && o.size() < *min) {
      invalid(path, std::to_string(o.size()), path + " in body should have at least " + number_text(*min) + " properties");
    }
    if (const auto* req = s.if_contains("required"); req && req->is_array()) {
      for (const auto& k : req->as_array()) {
        if (k.is_string() && included(k.as_string()) && !o.contains(k.as_string())) add(child(path, k.as_string()) + ": Required value");
      }
    }
    const json::object* props = obj_of(s, "properties");
    const json::object* extra = obj_of(s, "additionalProperties");
    for (const auto& [k, v] : o) {
      if (!included(k)) continue;
      if (resource && (k == "apiVersion" || k == "kind" || k == "metadata")) continue;
      const json::object* ps = props ? obj_of(*props, k) : nullptr;
      if (!ps) ps = extra;
      if (ps) node(v, *ps, child(path, k), flag(*ps, "x-kubernetes-embedded-resource"), Part::kAll);
    }
  }

  std::vector<std::string>& errs_;
};

void prune_node(json::value& v, const json::object& s, const std::string& path, bool resource, std::vector<std::string>& out) {
  if (v.is_array()) {
    if (const auto* items = obj_of(s, "items")) {
      auto& a = v.as_array();
      for (size_t i = 0; i < a.size(); ++i) prune_node(a[i], *items, index(path, i), flag(*items, "x-kubernetes-embedded-resource"), out);
    }
    return;
  }
  if (!v.is_object()) return;
  const json::object* props = obj_of(s, "properties");
  const json::value* extra = s.if_contains("additionalProperties");
  bool keep_unknown = flag(s, "x-kubernetes-preserve-unknown-fields") || (extra && extra->is_bool() && extra->as_bool());
  std::vector<std::string> gone;
  for (auto& [k, child_value] : v.as_object()) {
    if (resource && (k == "apiVersion" || k == "kind" || k == "metadata")) continue;
    if (const json::object* ps = props ? obj_of(*props, k) : nullptr) {
      prune_node(child_value, *ps, child(path, k), flag(*ps, "x-kubernetes-embedded-resource"), out);
    } else if (extra && extra->is_object()) {
      prune_node(child_value, extra->as_object(), child(path, k), flag(extra->as_object(), "x-kubernetes-embedded-resource"), out);
    } else if (!keep_unknown) {
      gone.emplace_back(k);
    }
  }
  for (const auto& k : gone) {
    v.as_object().erase(k);
    out.push_back(child(path, k));
  }
}

void default_node(json::value& v, const json::object& s) {
  if (v.is_array()) {
    if (const auto* items = obj_of(s, "items")) {
      for (auto& e : v.as_array()) default_node(e, *items);
    }
    return;
  }
  if (!v.is_object()) return;
  auto& o = v.as_object();
  const json::object* props = obj_of(s, "properties");
  const json::object* extra = obj_of(s, "additionalProperties");
  if (props) {
    for (const auto& [k, ps] : *props) {
      if (!ps.is_object()) continue;
      const auto* d = ps.as_object().if_contains("default");
      auto* cur = o.if_contains(k);
      if (d && (!cur || (cur->is_null() && !flag(ps.as_object(), "nullable")))) o[k] = *d;
    }
  }
  std::vector<std::string> nulls;
  for (auto& [k, cv] : o) {
    const json::object* ps = props ? obj_of(*props, k) : nullptr;
    if (!ps) ps = extra;
    if (!ps) continue;
    if (cv.is_null()) {
      if (!flag(*ps, "nullable")) nulls.emplace_back(k);
      continue;
    }
    default_node(cv, *ps);
  }
  for (const auto& k : nulls) o.erase(k);
}

enum class Level { kRoot, kItem, kField };

void structural(const json::object& s, const std::string& path, Level lvl, std::vector<std::string>& out) {
  std::string type = str_of(s, "type");
  bool embedded = flag(s, "x-kubernetes-embedded-resource");
  if (embedded && type != "object") {
    if (type.empty()) out.push_back(path + ".type: Required value: must be object if x-kubernetes-embedded-resource is true");
    else out.push_back(path + ".type: Invalid value: " + quoted(type) + ": must be object if x-kubernetes-embedded-resource is true");
  } else if (type.empty() && !flag(s, "x-kubernetes-int-or-string") && !flag(s, "x-kubernetes-preserve-unknown-fields")) {
    const char* detail = lvl == Level::kRoot   ? "must not be empty at the root"
                         : lvl == Level::kItem ? "must not be empty for specified array items"
                                               : "must not be empty for specified object fields";
    out.push_back(path + ".type: Required value: " + detail);
  }
  if (lvl == Level::kRoot && !type.empty() && type != "object") {
    out.push_back(path + ".type: Invalid value: " + quoted(type) + ": must be object at the root");
  }
  if (s.contains("properties") && s.contains("additionalProperties")) {
    out.push_back(path + ".additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive");
  }
  if (flag(s, "uniqueItems")) {
    out.push_back(path + ".uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic");
  }
  if (type == "array" && !obj_of(s, "items")) out.push_back(path + ".items: Required value: must be specified");
  if (const auto* props = obj_of(s, "properties")) {
    for (const auto& [k, ps] : *props) {
      if (ps.is_object()) structural(ps.as_object(), path + ".properties[" + std::string(k) + "]", Level::kField, out);
    }
  }
  if (const auto* items = obj_of(s, "items")) structural(*items, path + ".items", Level::kItem, out);
  if (const auto* extra = obj_of(s, "additionalProperties")) structural(*extra, path + ".additionalProperties", Level::kField, out);
}

}  // namespace

std::string go_value(const json::value& v) {
  if (v.is_string()) return quoted(v.as_string());
  if (v.is_int64()) return std::to_string(v.as_int64());
  if (v.is_uint64()) return std::to_string(v.as_uint64());
  if (v.is_double()) return number_text(v.as_double());
  if (v.is_bool()) return v.as_bool() ? "true" : "false";
  if (v.is_null()) return "\"null\"";
  return json::serialize(v);
}

std::vector<std::string> prune(json::value& obj, const json::object& schema) {
  std::vector<std::string> out;
  prune_node(obj, schema, "", true, out);
  return out;
}

void apply_defaults(json::value& obj, const json::object& schema) {
  if (!obj.is_object()) return;
  // The root's metadata is the API server's, never defaulted from the schema.
  json::value meta;
  if (auto* m = obj.as_object().if_contains("metadata")) meta = *m;
  default_node(obj, schema);
  if (!meta.is_null()) obj.as_object()["metadata"] = meta;
}

std::vector<std::string> validate(const json::value& obj, const json::object& schema, Part part) {
  std::vector<std::string> errs;
  Validator(errs).node(obj, schema, "", true, part);
  return errs;
}

std::vector<std::string> structural_problems(const json::object& schema, const std::string& path) {
  std::vector<std::string> out;
  structural(schema, path, Level::kRoot, out);
  return out;
}

}  // namespace kvb::testcluster::crd
