#include "testcluster/server_side_apply.h"

#include "kube/object.h"
#include "testcluster/admission.h"
#include "testcluster/openapi_builtin.h"

#include <boost/json.hpp>

#include <algorithm>
#include <map>
#include <set>

namespace kvb::testcluster {
namespace json = boost::json;

namespace {

using Path = std::vector<std::string>;
using FieldSet = std::set<Path>;

struct Ctx {
  bool builtin = false;
};

enum class ListKind { kAtomic, kSet, kMap };
struct ListType {
  ListKind kind = ListKind::kAtomic;
  std::vector<std::string> keys;
};

// x-kubernetes-list-type / list-map-keys of k8s.io/api (ObjectMeta's lists apply to every kind).
ListType list_type(const Path& parent, const std::string& field, const Ctx& c) {
  bool in_meta = parent.size() == 1 && parent[0] == "f:metadata";
  if (in_meta && field == "finalizers") return {ListKind::kSet, {}};
  if (in_meta && field == "ownerReferences") return {ListKind::kMap, {"uid"}};
  if (!c.builtin) return {};
  const auto* keys = list_map_keys(field);
  if (!keys) return {};
  return {ListKind::kMap, *keys};
}

// Maps with free-form keys: an Update that adds one owns the map itself (".").
bool granular_map(const std::string& field) {
  static const std::set<std::string> kMaps{"labels",     "annotations", "data",      "binaryData",      "stringData",
                                           "nodeSelector", "parameters", "requests", "limits",          "capacity",
                                           "allocatable", "matchLabels", "volumeAttributes"};
  return kMaps.count(field) > 0;
}

std::string field_of(const std::string& element) { return element.rfind("f:", 0) == 0 ? element.substr(2) : ""; }

json::value key_value(const json::object& item, const std::string& k) {
  if (const auto* v = item.if_contains(k)) return *v;
  if (k == "protocol") return "TCP";  // ContainerPort.protocol's default
  return nullptr;
}

std::string item_element(const json::value& item, const ListType& lt) {
  if (lt.kind == ListKind::kSet || !item.is_object()) return "v:" + json::serialize(item);
  json::object key;  // fields in name order, as structured-merge-diff writes them
  std::vector<std::string> names = lt.keys;
  std::sort(names.begin(), names.end());
  for (const auto& k : names) key[k] = key_value(item.as_object(), k);
  return "k:" + json::serialize(key);
}

// The node at `path` (nullptr when the object lacks it).
const json::value* at(const json::value& root, const Path& path) {
  const json::value* cur = &root;
  for (const auto& e : path) {
    if (e.rfind("f:", 0) == 0) {
      if (!cur->is_object()) return nullptr;
      cur = cur->as_object().if_contains(e.substr(2));
    } else if (e.rfind("k:", 0) == 0) {
      if (!cur->is_array()) return nullptr;
      boost::system::error_code ec;
      json::value key = json::parse(e.substr(2), ec);
      if (ec || !key.is_object()) return nullptr;
      const json::value* found = nullptr;
      for (const auto& item : cur->as_array()) {
        if (!item.is_object()) continue;
        bool all = true;
        for (const auto& [k, v] : key.as_object()) all = all && key_value(item.as_object(), k) == v;
        if (all) {
          found = &item;
          break;
        }
      }
      cur = found;
    } else if (e.rfind("v:", 0) == 0) {
      if (!cur->is_array()) return nullptr;
      const json::value* found = nullptr;
      for (const auto& item : cur->as_array()) {
        if ("v:" + json::serialize(item) == e) found = &item;
      }
      cur = found;
    } else {
      return nullptr;
    }
    if (!cur) return nullptr;
  }
  return cur;
}

// Removes the node at path; true when it was there.
bool erase_at(json::value& root, const Path& path) {
  if (path.empty()) return false;
  Path parent(path.begin(), path.end() - 1);
  auto* p = const_cast<json::value*>(at(root, parent));
  if (!p) return false;
  const json::value* node = at(root, path);
  if (!node) return false;
  if (p->is_object()) {
    if (p->as_object().erase(path.back().substr(2)) == 0) return false;
    // A map left empty goes too (an omitempty field of the decoded type).
    if (p->as_object().empty() && parent.size() > 0 && parent.back().rfind("f:", 0) == 0) erase_at(root, parent);
    return true;
  }
  if (p->is_array()) {
    auto& a = p->as_array();
    for (auto it = a.begin(); it != a.end(); ++it) {
      if (&*it == node) {
        a.erase(it);
        return true;
      }
    }
  }
  return false;
}

// The fields a configuration sets: its leaves, atomic lists and list items (ToFieldSet).
void to_set(const json::value& v, Path& path, FieldSet& out, const Ctx& c) {
  if (v.is_object() && !v.as_object().empty()) {
    for (const auto& [k, child] : v.as_object()) {
      path.push_back("f:" + std::string(k));
      to_set(child, path, out, c);
      path.pop_back();
    }
    return;
  }
  if (v.is_array() && !path.empty()) {
    Path parent(path.begin(), path.end() - 1);
    ListType lt = list_type(parent, field_of(path.back()), c);
    if (lt.kind != ListKind::kAtomic) {
      for (const auto& item : v.as_array()) {
        path.push_back(item_element(item, lt));
        out.insert(path);
        if (lt.kind == ListKind::kMap) to_set(item, path, out, c);
        path.pop_back();
      }
      return;
    }
  }
  out.insert(path);
}

// The fields an Update added or changed (structured-merge-diff's Compare: Added ∪ Modified).
void changed_set(const json::value* old, const json::value& now, Path& path, FieldSet& out, const Ctx& c) {
  if (!old) {
    if (now.is_object() && !path.empty() && granular_map(field_of(path.back()))) out.insert(path);
    if (now.is_object() && !now.as_object().empty()) {
      for (const auto& [k, child] : now.as_object()) {
        path.push_back("f:" + std::string(k));
        changed_set(nullptr, child, path, out, c);
        path.pop_back();
      }
      return;
    }
    ListType lt = now.is_array() && !path.empty() ? list_type(Path(path.begin(), path.end() - 1), field_of(path.back()), c) : ListType{};
    if (lt.kind == ListKind::kAtomic) {
      out.insert(path);
      return;
    }
    for (const auto& item : now.as_array()) {
      path.push_back(item_element(item, lt));
      out.insert(path);
      if (lt.kind == ListKind::kMap) changed_set(nullptr, item, path, out, c);
      path.pop_back();
    }
    return;
  }
  if (now.is_object() && old->is_object() && !now.as_object().empty()) {
    for (const auto& [k, child] : now.as_object()) {
      path.push_back("f:" + std::string(k));
      changed_set(old->as_object().if_contains(k), child, path, out, c);
      path.pop_back();
    }
    return;
  }
  if (now.is_array() && old->is_array() && !path.empty()) {
    Path parent(path.begin(), path.end() - 1);
    ListType lt = list_type(parent, field_of(path.back()), c);
    if (lt.kind != ListKind::kAtomic) {
      for (const auto& item : now.as_array()) {
        path.push_back(item_element(item, lt));
        const json::value* before = at(*old, Path{path.back()});
        if (!before) out.insert(path);
        if (lt.kind == ListKind::kMap) changed_set(before, item, path, out, c);
        path.pop_back();
      }
      return;
    }
  }
  if (*old != now) out.insert(path);
}

// The object without what no manager owns (apiserver fieldmanager stripmeta.go, status reset).
json::value stripped(const ResourceInfo& r, const Object& o) {
  json::object s = o;
  s.erase("apiVersion");
  s.erase("kind");
  if (r.has_status) s.erase("status");
  if (auto* m = s.if_contains("metadata"); m && m->is_object()) {
    auto& mo = m->as_object();
    for (const char* k : {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "selfLink",
                          "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds"}) {
      mo.erase(k);
    }
    if (mo.empty()) s.erase("metadata");
  }
  return s;
}

// FieldsV1 <-> FieldSet.
struct Trie {
  bool member = false;
  std::map<std::string, Trie> kids;
};

json::object encode(const FieldSet& set) {
  Trie root;
  for (const auto& p : set) {
    Trie* t = &root;
    for (const auto& e : p) t = &t->kids[e];
    t->member = true;
  }
  struct Enc {
    static json::object run(const Trie& t) {
      json::object o;
      if (t.member && !t.kids.empty()) o["."] = json::object();
      for (const auto& [k, kid] : t.kids) o[k] = run(kid);
      return o;
    }
  };
  return Enc::run(root);
}

void decode(const json::value& v, Path& path, FieldSet& out) {
  if (!v.is_object()) return;
  for (const auto& [k, child] : v.as_object()) {
    if (k == ".") {
      out.insert(path);
      continue;
    }
    path.push_back(std::string(k));
    if (child.is_object() && child.as_object().empty()) out.insert(path);
    else decode(child, path, out);
    path.pop_back();
  }
}

struct Entry {
  std::string manager, operation, api_version, time, subresource;
  FieldSet fields;
  bool changed = false;
};

std::vector<Entry> entries_of(const Object& o) {
  std::vector<Entry> out;
  const auto* mf = kube::array_at(o, {"metadata", "managedFields"});
  if (!mf) return out;
  for (const auto& e : *mf) {
    Entry en{std::string(kube::str_at(e, {"manager"})), std::string(kube::str_at(e, {"operation"})),
             std::string(kube::str_at(e, {"apiVersion"})), std::string(kube::str_at(e, {"time"})),
             std::string(kube::str_at(e, {"subresource"})), {}, false};
    Path p;
    if (const auto* f = kube::value_at(e, {"fieldsV1"})) decode(*f, p, en.fields);
    out.push_back(std::move(en));
  }
  return out;
}

// Keeps only paths the object has, drops empty managers, writes metadata.managedFields.
void store_entries(const ResourceInfo& r, std::vector<Entry> entries, Object& o, WallTime now) {
  json::value s = stripped(r, o);
  json::array mf;
  for (auto& e : entries) {
    for (auto it = e.fields.begin(); it != e.fields.end();) {
      if (!at(s, *it)) {
        it = e.fields.erase(it);
        e.changed = true;
      } else {
        ++it;
      }
    }
    if (e.fields.empty()) continue;
    json::object j{{"manager", e.manager},
                   {"operation", e.operation},
                   {"apiVersion", e.api_version},
                   {"time", e.changed || e.time.empty() ? format_rfc3339(now) : e.time},
                   {"fieldsType", "FieldsV1"},
                   {"fieldsV1", encode(e.fields)}};
    if (!e.subresource.empty()) j["subresource"] = e.subresource;
    mf.push_back(std::move(j));
  }
  auto& m = o["metadata"];
  if (!m.is_object()) m = json::object();
  if (mf.empty()) m.as_object().erase("managedFields");
  else m.as_object()["managedFields"] = std::move(mf);
}

void merge(json::value& dst, const json::value& src, Path& path, const Ctx& c) {
  if (src.is_object() && dst.is_object()) {
    for (const auto& [k, v] : src.as_object()) {
      auto& d = dst.as_object()[k];
      if (d.is_null()) {
        d = v;
        continue;
      }
      path.push_back("f:" + std::string(k));
      merge(d, v, path, c);
      path.pop_back();
    }
    return;
  }
  if (src.is_array() && dst.is_array() && !path.empty()) {
    Path parent(path.begin(), path.end() - 1);
    ListType lt = list_type(parent, field_of(path.back()), c);
    if (lt.kind != ListKind::kAtomic) {
      auto& d = dst.as_array();
      for (const auto& item : src.as_array()) {
        std::string e = item_element(item, lt);
        auto* found = const_cast<json::value*>(at(dst, Path{e}));
        if (!found) {
          d.push_back(item);
        } else if (lt.kind == ListKind::kMap) {
          path.push_back(e);
          merge(*found, item, path, c);
          path.pop_back();
        }
      }
      return;
    }
  }
  dst = src;
}

std::string path_string(const Path& p) {
  std::string s;
  for (const auto& e : p) {
    if (e.rfind("f:", 0) == 0) {
      s += "." + e.substr(2);
    } else if (e.rfind("v:", 0) == 0) {
      s += "[=" + e.substr(2) + "]";
    } else if (e.rfind("k:", 0) == 0) {
      boost::system::error_code ec;
      json::value key = json::parse(e.substr(2), ec);
      std::string inner;
      if (!ec && key.is_object()) {
        for (const auto& [k, v] : key.as_object()) inner += (inner.empty() ? "" : ",") + std::string(k) + "=" + json::serialize(v);
      }
      s += "[" + inner + "]";
    }
  }
  return s;
}

std::string print_manager(const Entry& e) {
  std::string m = json::serialize(json::string(e.manager));
  if (!e.subresource.empty()) m += " with subresource " + json::serialize(json::string(e.subresource));
  if (e.operation == "Update") m += " using " + e.api_version;
  return m;
}

bool is_item(const Path& p) { return !p.empty() && (p.back().rfind("k:", 0) == 0 || p.back().rfind("v:", 0) == 0); }

}  // namespace

std::string conflict_message(const std::vector<ApplyConflict>& conflicts) {
  if (conflicts.size() == 1) {
    return "Apply failed with 1 conflict: conflict with " + conflicts[0].manager + ": " + conflicts[0].path;
  }
  std::map<std::string, std::vector<std::string>> by;
  for (const auto& c : conflicts) by[c.manager].push_back(c.path);
  std::string msg;
  for (const auto& [m, paths] : by) {
    msg += (msg.empty() ? "" : "\n") + std::string("conflicts with ") + m + ":";
    for (const auto& p : paths) msg += "\n- " + p;
  }
  return "Apply failed with " + std::to_string(conflicts.size()) + " conflicts: " + msg;
}

ApplyResult server_side_apply(const ResourceInfo& r, const Object* current, const Object& applied,
                              const std::string& manager, bool force, WallTime now) {
  Ctx c{is_builtin(r)};
  ApplyResult out;
  FieldSet wanted;
  json::value conf = stripped(r, applied);
  Path p;
  to_set(conf, p, wanted, c);
  std::vector<Entry> entries;
  json::value cur = current ? stripped(r, *current) : json::value(json::object());
  if (current) {
    entries = entries_of(*current);
    if (entries.empty()) {
      // An object written before managed fields were tracked: all of it belongs to
      // "before-first-apply" (apiserver fieldmanager's managedfieldsupdater/createdBeforeFirstApply).
      Entry before{"before-first-apply", "Update", r.ref.api_version(), "", "", {}, true};
      Path q;
      to_set(cur, q, before.fields, c);
      entries.push_back(std::move(before));
    }
  }
  auto mine = std::find_if(entries.begin(), entries.end(),
                           [&](const Entry& e) { return e.manager == manager && e.operation == "Apply"; });
  // Conflicts: a field this configuration sets to another value than the object has, owned by another manager.
  for (auto& e : entries) {
    if (e.manager == manager && e.operation == "Apply") continue;
    for (const auto& f : wanted) {
      if (is_item(f) || !e.fields.count(f)) continue;
      const json::value* have = at(cur, f);
      const json::value* want = at(conf, f);
      if (have && want && *have == *want) continue;
      out.conflicts.push_back({print_manager(e), path_string(f)});
    }
  }
  if (!out.conflicts.empty() && !force) return out;
  out.conflicts.clear();
  if (force) {
    for (auto& e : entries) {
      if (e.manager == manager && e.operation == "Apply") continue;
      for (const auto& f : wanted) {
        const json::value* have = at(cur, f);
        const json::value* want = at(conf, f);
        if (is_item(f) || (have && want && *have == *want)) continue;
        if (e.fields.erase(f) > 0) e.changed = true;
      }
    }
  }
  json::value merged = current ? json::value(*current) : json::value(applied);
  Path q;
  merge(merged, conf, q, c);
  // Fields this manager applied before and no longer does go, unless someone else owns them.
  if (mine != entries.end()) {
    for (const auto& f : mine->fields) {
      if (wanted.count(f)) continue;
      bool owned = false;
      for (const auto& e : entries) {
        if (&e == &*mine) continue;
        for (const auto& g : e.fields) owned = owned || (g.size() >= f.size() && std::equal(f.begin(), f.end(), g.begin()));
      }
      if (!owned) erase_at(merged, f);
    }
    if (mine->fields != wanted) mine->changed = true;
    mine->fields = wanted;
  } else {
    entries.push_back(Entry{manager, "Apply", r.ref.api_version(), "", "", wanted, true});
  }
  out.object = merged.as_object();
  out.object["apiVersion"] = r.ref.api_version();
  out.object["kind"] = r.ref.kind;
  store_entries(r, std::move(entries), out.object, now);
  return out;
}

void record_update(const ResourceInfo& r, const Object* old, Object& next, const std::string& manager, WallTime now) {
  Ctx c{is_builtin(r)};
  std::vector<Entry> entries = old ? entries_of(*old) : std::vector<Entry>{};
  json::value before = old ? stripped(r, *old) : json::value(json::object());
  json::value after = stripped(r, next);
  FieldSet changed;
  Path p;
  changed_set(old ? &before : nullptr, after, p, changed, c);
  auto mine = std::find_if(entries.begin(), entries.end(), [&](const Entry& e) {
    return e.manager == manager && e.operation == "Update" && e.api_version == r.ref.api_version();
  });
  // An Update takes the fields it changed from everyone else (structured-merge-diff updates with force).
  for (auto& e : entries) {
    if (mine != entries.end() && &e == &*mine) continue;
    for (const auto& f : changed) {
      if (e.fields.erase(f)) e.changed = true;
    }
  }
  if (!changed.empty()) {
    if (mine == entries.end()) {
      entries.push_back(Entry{manager, "Update", r.ref.api_version(), "", "", changed, true});
    } else {
      mine->fields.insert(changed.begin(), changed.end());
      mine->changed = true;
    }
  }
  store_entries(r, std::move(entries), next, now);
}

std::string default_manager(const std::string& field_manager, const std::string& user_agent) {
  if (!field_manager.empty()) return field_manager;
  std::string ua = user_agent.substr(0, user_agent.find('/'));
  return ua.empty() ? "unknown" : ua.substr(0, 128);
}

}  // namespace kvb::testcluster
