#include "common/doc_reader.h"

#include "common/duration.h"

#include <boost/json.hpp>

namespace kvb {
namespace json = boost::json;

namespace {
const json::value& empty_object() {
  static const json::value v = json::object();
  return v;
}
}  // namespace

std::string describe_json_value(const json::value& v) {
  std::string s = json::serialize(v);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

DocReader::DocReader(const json::value& v, std::string origin, std::string path)
    : v_(&v), origin_(std::move(origin)), path_(std::move(path)) {}

bool DocReader::is_object() const { return v_->is_object(); }

bool DocReader::has(std::string_view key) const {
  return v_->is_object() && v_->get_object().contains(key) && !v_->get_object().at(key).is_null();
}

std::string DocReader::field_path(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

Error DocReader::error(std::string_view key, std::string_view problem) const {
  return Error(Errc::kInvalidArgument, origin_ + ": " + field_path(key) + ": " + std::string(problem));
}

Error DocReader::error_here(std::string_view problem) const {
  return Error(Errc::kInvalidArgument, origin_ + ": " + (path_.empty() ? "document" : path_) + ": " + std::string(problem));
}

const json::value* DocReader::raw(std::string_view key) {
  known_.emplace(key);
  if (!v_->is_object()) return nullptr;
  const json::value* p = v_->get_object().if_contains(key);
  return (p && !p->is_null()) ? p : nullptr;
}

Result<std::string> DocReader::str(std::string_view key, std::string def) {
  const json::value* p = raw(key);
  if (!p) return def;
  if (p->is_string()) return std::string(p->get_string());
  if (p->is_int64() || p->is_uint64() || p->is_double() || p->is_bool()) return json::serialize(*p);
  return error(key, "must be a string (got " + describe_json_value(*p) + ")");
}

Result<std::string> DocReader::required_str(std::string_view key) {
  auto s = str(key);
  if (!s) return s;
  if (s->empty()) return error(key, "is required");
  return s;
}

Result<bool> DocReader::boolean(std::string_view key, bool def) {
  const json::value* p = raw(key);
  if (!p) return def;
  if (p->is_bool()) return p->get_bool();
  if (p->is_string()) {
    std::string_view s = p->get_string();
    if (s == "true") return true;
    if (s == "false") return false;
  }
  return error(key, "must be true or false (got " + describe_json_value(*p) + ")");
}

Result<int64_t> DocReader::integer(std::string_view key, int64_t def) {
  const json::value* p = raw(key);
  if (!p) return def;
  if (p->is_int64()) return p->get_int64();
  if (p->is_uint64()) return static_cast<int64_t>(p->get_uint64());
  return error(key, "must be an integer (got " + describe_json_value(*p) + ")");
}

Result<std::chrono::nanoseconds> DocReader::duration(std::string_view key, std::chrono::nanoseconds def) {
  const json::value* p = raw(key);
  if (!p) return def;
  if (!p->is_string()) return error(key, "must be a duration such as 200ms, 60s or 5m (got " + describe_json_value(*p) + ")");
  auto d = parse_duration(p->get_string());
  if (!d) return error(key, d.error().message);
  return *d;
}

Result<std::map<std::string, std::string>> DocReader::string_map(std::string_view key) {
  std::map<std::string, std::string> out;
  const json::value* p = raw(key);
  if (!p) return out;
  if (!p->is_object()) return error(key, "must be a mapping of strings (got " + describe_json_value(*p) + ")");
  for (const auto& [k, v] : p->get_object()) {
    if (v.is_string()) out[std::string(k)] = std::string(v.get_string());
    else if (v.is_bool() || v.is_number()) out[std::string(k)] = json::serialize(v);
    else return error(std::string(key) + "." + std::string(k), "must be a string (got " + describe_json_value(v) + ")");
  }
  return out;
}

Result<std::vector<std::string>> DocReader::string_list(std::string_view key) {
  std::vector<std::string> out;
  const json::value* p = raw(key);
  if (!p) return out;
  if (!p->is_array()) return error(key, "must be a list of strings (got " + describe_json_value(*p) + ")");
  size_t i = 0;
  for (const auto& v : p->get_array()) {
    if (!v.is_string()) {
      return error(std::string(key) + "[" + std::to_string(i) + "]", "must be a string (got " + describe_json_value(v) + ")");
    }
    out.emplace_back(v.get_string());
    ++i;
  }
  return out;
}

Result<std::vector<DocReader>> DocReader::list(std::string_view key) {
  std::vector<DocReader> out;
  const json::value* p = raw(key);
  if (!p) return out;
  if (!p->is_array()) return error(key, "must be a list (got " + describe_json_value(*p) + ")");
  size_t i = 0;
  for (const auto& v : p->get_array()) {
    out.emplace_back(v, origin_, field_path(key) + "[" + std::to_string(i++) + "]");
  }
  return out;
}

Result<DocReader> DocReader::object(std::string_view key) {
  const json::value* p = raw(key);
  if (!p) return DocReader(empty_object(), origin_, field_path(key));
  if (!p->is_object()) return error(key, "must be a mapping (got " + describe_json_value(*p) + ")");
  return DocReader(*p, origin_, field_path(key));
}

Status DocReader::finish() const {
  if (v_->is_null()) return ok();
  if (!v_->is_object()) return error_here("must be a mapping (got " + describe_json_value(*v_) + ")");
  for (const auto& [k, v] : v_->get_object()) {
    if (!known_.count(std::string_view(k))) return error(k, "unknown field");
  }
  return ok();
}

}  // namespace kvb
