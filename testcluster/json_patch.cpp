#include "testcluster/json_patch.h"

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>

namespace kvb::testcluster {
namespace json = boost::json;

void apply_merge_patch(json::value& target, const json::value& patch) {
  if (!patch.is_object()) {
    target = patch;
    return;
  }
  if (!target.is_object()) target = json::object();
  auto& t = target.get_object();
  for (const auto& [k, v] : patch.get_object()) {
    if (v.is_null()) {
      t.erase(k);
    } else {
      apply_merge_patch(t[k], v);
    }
  }
}

namespace {

// patchMergeKey of the lists in k8s.io/api (by field name); "" marks a merged primitive list.
const char* merge_key(std::string_view field) {
  static const std::pair<std::string_view, const char*> kKeys[] = {
      {"containers", "name"},     {"initContainers", "name"},       {"ephemeralContainers", "name"},
      {"volumes", "name"},        {"env", "name"},                  {"imagePullSecrets", "name"},
      {"resourceClaims", "name"}, {"volumeMounts", "mountPath"},    {"volumeDevices", "devicePath"},
      {"ports", "containerPort"}, {"ownerReferences", "uid"},       {"conditions", "type"},
      {"hostAliases", "ip"},      {"finalizers", ""}};
  for (const auto& [f, k] : kKeys) {
    if (f == field) return k;
  }
  return nullptr;
}

void strategic_merge(json::value& target, const json::value& patch);

void strategic_list(json::value& target, const json::array& patch, const char* key) {
  if (!target.is_array()) target = json::array();
  auto& t = target.as_array();
  if (!*key) {  // a set of primitives
    for (const auto& v : patch) {
      if (std::find(t.begin(), t.end(), v) == t.end()) t.push_back(v);
    }
    return;
  }
  for (const auto& item : patch) {
    if (!item.is_object()) continue;
    const auto* k = item.as_object().if_contains(key);
    auto it = std::find_if(t.begin(), t.end(), [&](const json::value& e) {
      return k && e.is_object() && e.as_object().if_contains(key) && *e.as_object().if_contains(key) == *k;
    });
    const auto* directive = item.as_object().if_contains("$patch");
    if (directive && directive->is_string() && directive->as_string() == "delete") {
      if (it != t.end()) t.erase(it);
      continue;
    }
    if (it == t.end()) {
      json::value fresh = json::object();
      strategic_merge(fresh, item);
      t.push_back(fresh);
    } else {
      strategic_merge(*it, item);
    }
  }
}

void strategic_merge(json::value& target, const json::value& patch) {
  if (!patch.is_object()) {
    target = patch;
    return;
  }
  const auto& p = patch.as_object();
  if (const auto* d = p.if_contains("$patch"); d && d->is_string()) {
    if (d->as_string() == "delete") {
      target = nullptr;
      return;
    }
    if (d->as_string() == "replace") {
      json::object rest = p;
      rest.erase("$patch");
      target = rest;
      return;
    }
  }
  if (!target.is_object()) target = json::object();
  auto& t = target.as_object();
  for (const auto& [k, v] : p) {
    std::string_view key = k;
    if (key == "$patch" || key.rfind("$setElementOrder/", 0) == 0) continue;
    if (key == "$retainKeys" && v.is_array()) continue;
    if (key.rfind("$deleteFromPrimitiveList/", 0) == 0) {
      auto field = key.substr(25);
      if (auto* list = t.if_contains(field); list && list->is_array() && v.is_array()) {
        json::array kept;
        for (const auto& e : list->as_array()) {
          if (std::find(v.as_array().begin(), v.as_array().end(), e) == v.as_array().end()) kept.push_back(e);
        }
        *list = kept;
      }
      continue;
    }
    if (v.is_null()) {
      t.erase(k);
    } else if (v.is_array() && merge_key(key)) {
      strategic_list(t[k], v.as_array(), merge_key(key));
    } else {
      strategic_merge(t[k], v);
      if (t[k].is_null()) t.erase(k);
    }
  }
  if (const auto* retain = p.if_contains("$retainKeys"); retain && retain->is_array()) {
    json::object kept;
    for (const auto& [k, v] : t) {
      if (std::find(retain->as_array().begin(), retain->as_array().end(), json::value(json::string(k))) != retain->as_array().end()) {
        kept[k] = v;
      }
    }
    t = kept;
  }
}

Error bad(const std::string& why) { return Error(Errc::kInvalid, "JSON patch: " + why); }

// Splits an RFC 6901 pointer into unescaped tokens.
Result<std::vector<std::string>> tokens(std::string_view ptr) {
  std::vector<std::string> out;
  if (ptr.empty()) return out;
  if (ptr[0] != '/') return bad("path \"" + std::string(ptr) + "\" must start with '/'");
  size_t start = 1;
  for (;;) {
    size_t slash = ptr.find('/', start);
    std::string tok(ptr.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    std::string un;
    for (size_t i = 0; i < tok.size(); ++i) {
      if (tok[i] == '~' && i + 1 < tok.size() && (tok[i + 1] == '0' || tok[i + 1] == '1')) {
        un += tok[i + 1] == '0' ? '~' : '/';
        ++i;
      } else {
        un += tok[i];
      }
    }
    out.push_back(un);
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return out;
}

Result<size_t> index_of(const std::string& tok, size_t size, bool allow_end) {
  if (tok == "-" && allow_end) return size;
  size_t idx = 0;
  auto [p, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), idx);
  if (ec != std::errc() || p != tok.data() + tok.size()) return bad("\"" + tok + "\" is not an array index");
  if (idx > size || (idx == size && !allow_end)) return bad("array index " + tok + " out of range");
  return idx;
}

// Resolves all but the last token; returns the parent container.
Result<json::value*> parent_of(json::value& root, const std::vector<std::string>& toks) {
  json::value* cur = &root;
  for (size_t i = 0; i + 1 < toks.size(); ++i) {
    if (cur->is_object()) {
      auto* next = cur->get_object().if_contains(toks[i]);
      if (!next) return bad("path component \"" + toks[i] + "\" does not exist");
      cur = next;
    } else if (cur->is_array()) {
      auto idx = index_of(toks[i], cur->get_array().size(), false);
      if (!idx) return idx.error();
      cur = &cur->get_array()[*idx];
    } else {
      return bad("path component \"" + toks[i] + "\" is not a container");
    }
  }
  return cur;
}

Result<json::value> get_at(json::value& root, const std::vector<std::string>& toks) {
  if (toks.empty()) return root;
  auto parent = parent_of(root, toks);
  if (!parent) return parent.error();
  json::value& p = **parent;
  if (p.is_object()) {
    auto* v = p.get_object().if_contains(toks.back());
    if (!v) return bad("path \"" + toks.back() + "\" does not exist");
    return *v;
  }
  if (p.is_array()) {
    auto idx = index_of(toks.back(), p.get_array().size(), false);
    if (!idx) return idx.error();
    return p.get_array()[*idx];
  }
  return bad("not a container");
}

Status remove_at(json::value& root, const std::vector<std::string>& toks) {
  if (toks.empty()) return bad("cannot remove the whole document");
  auto parent = parent_of(root, toks);
  if (!parent) return parent.error();
  json::value& p = **parent;
  if (p.is_object()) {
    if (!p.get_object().erase(toks.back())) return bad("path \"" + toks.back() + "\" does not exist");
    return ok();
  }
  if (p.is_array()) {
    auto idx = index_of(toks.back(), p.get_array().size(), false);
    if (!idx) return idx.error();
    p.get_array().erase(p.get_array().begin() + static_cast<std::ptrdiff_t>(*idx));
    return ok();
  }
  return bad("not a container");
}

Status add_at(json::value& root, const std::vector<std::string>& toks, json::value v, bool replace) {
  if (toks.empty()) {
    root = std::move(v);
    return ok();
  }
  auto parent = parent_of(root, toks);
  if (!parent) return parent.error();
  json::value& p = **parent;
  if (p.is_object()) {
    if (replace && !p.get_object().contains(toks.back())) return bad("path \"" + toks.back() + "\" does not exist");
    p.get_object()[toks.back()] = std::move(v);
    return ok();
  }
  if (p.is_array()) {
    auto& arr = p.get_array();
    auto idx = index_of(toks.back(), arr.size(), !replace);
    if (!idx) return idx.error();
    if (replace) arr[*idx] = std::move(v);
    else arr.insert(arr.begin() + static_cast<std::ptrdiff_t>(*idx), std::move(v));
    return ok();
  }
  return bad("not a container");
}

}  // namespace

Status apply_json_patch(json::value& target, const json::value& patch) {
  if (!patch.is_array()) return bad("a JSON patch must be an array of operations");
  json::value work = target;  // all or nothing
  for (const auto& opv : patch.get_array()) {
    if (!opv.is_object()) return bad("each operation must be an object");
    const auto& op = opv.get_object();
    auto str = [&](std::string_view k) -> std::string {
      auto* p = op.if_contains(k);
      return p && p->is_string() ? std::string(p->get_string()) : std::string();
    };
    std::string name = str("op");
    auto path = tokens(str("path"));
    if (!path) return path.error();
    if (name == "add" || name == "replace" || name == "test") {
      auto* val = op.if_contains("value");
      if (!val) return bad(name + " needs a value");
      if (name == "test") {
        auto cur = get_at(work, *path);
        if (!cur || *cur != *val) return bad("test failed at \"" + str("path") + "\"");
        continue;
      }
      if (auto st = add_at(work, *path, *val, name == "replace"); !st) return st;
    } else if (name == "remove") {
      if (auto st = remove_at(work, *path); !st) return st;
    } else if (name == "move" || name == "copy") {
      auto from = tokens(str("from"));
      if (!from) return from.error();
      auto v = get_at(work, *from);
      if (!v) return v.error();
      if (name == "move") {
        if (auto st = remove_at(work, *from); !st) return st;
      }
      if (auto st = add_at(work, *path, *v, false); !st) return st;
    } else {
      return bad("unknown op \"" + name + "\"");
    }
  }
  target = std::move(work);
  return ok();
}

void apply_strategic_merge_patch(json::value& target, const json::value& patch) { strategic_merge(target, patch); }

}  // namespace kvb::testcluster
