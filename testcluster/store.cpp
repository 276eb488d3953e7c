#include "testcluster/store.h"

#include "common/base64.h"
#include "common/random.h"
#include "common/time.h"
#include "kube/object.h"

#include <boost/json.hpp>

#include <random>

namespace kvb::testcluster {
namespace json = boost::json;

std::string object_key(const std::string& ns, const std::string& name) {
  return ns.empty() ? name : ns + "/" + name;
}

namespace {
std::mt19937_64& rng() {
  static std::mt19937_64 r{std::random_device{}()};
  return r;
}

json::object& meta(Object& o) {
  auto& m = o["metadata"];
  if (!m.is_object()) m = json::object();
  return m.get_object();
}

std::string str(const Object& o, std::initializer_list<std::string_view> path) {
  return std::string(kube::str_at(o, path));
}

kube::Labels labels(const Object& o) { return kube::labels_of(o); }

Error conflict(const ResourceInfo& r, const std::string& name) {
  Error e(Errc::kConflict, "Operation cannot be fulfilled on " + r.ref.qualified_name() + " \"" + name +
                               "\": the object has been modified; please apply your changes to the latest version "
                               "and try again");
  e.http_status = 409;
  e.reason = "Conflict";
  return e;
}
}  // namespace

std::string random_suffix(size_t n) {
  static constexpr char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  std::string s;
  for (size_t i = 0; i < n; ++i) s += kAlphabet[rng()() % (sizeof kAlphabet - 1)];
  return s;
}

std::string new_uid() { return random_uuid(); }  // RFC 4122 version 4

Store::Store(const Registry& registry, size_t history) : registry_(registry), history_limit_(history) {}

const Store::Bucket* Store::bucket_if(const ResourceInfo& r) const {
  auto it = objects_.find(r.key());
  return it == objects_.end() ? nullptr : &it->second;
}

Error Store::not_found(const ResourceInfo& r, const std::string& name) const {
  Error e(Errc::kNotFound, r.ref.qualified_name() + " \"" + name + "\" not found");
  e.http_status = 404;
  e.reason = "NotFound";
  return e;
}

size_t Store::object_count() const {
  size_t n = 0;
  for (const auto& [k, b] : objects_) n += b.size();
  return n;
}

const Object* Store::find(const ResourceInfo& r, const std::string& ns, const std::string& name) const {
  const Bucket* b = bucket_if(r);
  if (!b) return nullptr;
  auto it = b->find(object_key(r.ref.namespaced ? ns : "", name));
  return it == b->end() ? nullptr : &it->second;
}

Result<Object> Store::get(const ResourceInfo& r, const std::string& ns, const std::string& name) const {
  if (const Object* o = find(r, ns, name)) return *o;
  return not_found(r, name);
}

Result<Object> Store::create(const ResourceInfo& r, const std::string& ns_in, Object obj) {
  std::string ns = r.ref.namespaced ? ns_in : "";
  auto& m = meta(obj);
  if (r.ref.namespaced) {
    std::string body_ns = str(obj, {"metadata", "namespace"});
    if (!body_ns.empty() && body_ns != ns) {
      Error e(Errc::kBadRequest, "the namespace of the provided object (" + body_ns +
                                     ") does not match the namespace sent on the request (" + ns + ")");
      e.http_status = 400;
      e.reason = "BadRequest";
      return e;
    }
    const ResourceInfo* nsr = registry_.find("", "v1", "namespaces");
    const Object* nso = find(*nsr, "", ns);
    if (!nso) {
      Error e(Errc::kNotFound, "namespaces \"" + ns + "\" not found");
      e.http_status = 404;
      e.reason = "NotFound";
      return e;
    }
    if (kube::value_at(*nso, {"metadata", "deletionTimestamp"})) {
      // The NamespaceLifecycle admission plugin (plugin/pkg/admission/namespace/lifecycle).
      std::string n = str(obj, {"metadata", "name"});
      Error e(Errc::kForbidden, r.ref.qualified_name() + " \"" + n + "\" is forbidden: unable to create new content in namespace " +
                                           ns + " because it is being terminated");
      e.http_status = 403;
      e.reason = "Forbidden";
      return e;
    }
    m["namespace"] = ns;
  } else {
    m.erase("namespace");
  }
  std::string name = str(obj, {"metadata", "name"});
  if (name.empty()) {
    std::string gen = str(obj, {"metadata", "generateName"});
    if (gen.empty()) {
      Error e(Errc::kInvalid, r.ref.kind + " \"\" is invalid: metadata.name: Required value: name or generateName is required");
      e.http_status = 422;
      e.reason = "Invalid";
      return e;
    }
    do {
      name = gen + random_suffix(5);
    } while (find(r, ns, name));
    m["name"] = name;
  }
  Bucket& b = bucket(r);
  std::string key = object_key(ns, name);
  if (admission_) KVB_CHECK(admission_(r, nullptr, obj));
  if (b.count(key)) {
    Error e(Errc::kAlreadyExists, r.ref.qualified_name() + " \"" + name + "\" already exists");
    e.http_status = 409;
    e.reason = "AlreadyExists";
    return e;
  }
  // Inserting keys into a boost::json::object invalidates references into it.
  obj["apiVersion"] = r.ref.api_version();
  obj["kind"] = r.ref.kind;
  auto& m2 = meta(obj);
  m2["uid"] = new_uid();
  m2["creationTimestamp"] = format_rfc3339(WallClock::now());
  m2["resourceVersion"] = std::to_string(++rv_);
  m2["generation"] = 1;
  m2.erase("deletionTimestamp");
  if (defaulter_) defaulter_(r, obj, nullptr);
  auto& stored = b[key] = std::move(obj);
  note_owners(stored);
  Object result = stored;  // listeners may change or delete it before we return
  emit(r, "ADDED", stored, {});
  return result;
}

Result<Object> Store::update(const ResourceInfo& r, const std::string& ns_in, Object obj, UpdateMode mode) {
  std::string ns = r.ref.namespaced ? ns_in : "";
  std::string name = str(obj, {"metadata", "name"});
  Bucket& b = bucket(r);
  auto it = b.find(object_key(ns, name));
  if (it == b.end()) return not_found(r, name);
  Object& cur = it->second;
  std::string want_rv = str(obj, {"metadata", "resourceVersion"});
  if (!want_rv.empty() && want_rv != str(cur, {"metadata", "resourceVersion"})) return conflict(r, name);
  if (mode != UpdateMode::kAll && admission_) KVB_CHECK(admission_(r, &cur, obj));
  Object old = cur;
  Object next;
  if (mode == UpdateMode::kStatus) {
    next = cur;
    if (auto* st = obj.if_contains("status")) next["status"] = *st;
    else next.erase("status");
  } else {
    next = std::move(obj);
    if (mode == UpdateMode::kMain && r.has_status) {
      if (auto* st = cur.if_contains("status")) next["status"] = *st;
      else next.erase("status");
    }
    // Server-set metadata cannot be changed by an update.
    auto& nm = meta(next);
    const auto& cm = cur.at("metadata").get_object();
    for (const char* k : {"uid", "creationTimestamp", "namespace", "name"}) {
      if (auto* v = cm.if_contains(k)) nm[k] = *v;
    }
    if (auto* dt = cm.if_contains("deletionTimestamp")) nm["deletionTimestamp"] = *dt;
    next["apiVersion"] = r.ref.api_version();  // invalidates nm
    next["kind"] = r.ref.kind;
    int64_t gen = kube::int_at(cur, {"metadata", "generation"}).value_or(1);
    bool spec_changed = kube::value_at(cur, {"spec"}) == nullptr
                            ? next.contains("spec")
                            : !next.contains("spec") || next.at("spec") != cur.at("spec");
    meta(next)["generation"] = spec_changed ? gen + 1 : gen;
  }
  if (defaulter_) defaulter_(r, next, &cur);
  // Nothing changed: no new resourceVersion, no event (as the real API server).
  {
    Object a = next, c = cur;
    meta(a).erase("resourceVersion");
    meta(c).erase("resourceVersion");
    if (a == c) return cur;
  }
  meta(next)["resourceVersion"] = std::to_string(++rv_);
  cur = std::move(next);
  note_owners(cur);
  emit(r, "MODIFIED", cur, old);  // listeners may change or delete it: found again below
  // The last finalizer of an object being deleted is gone: the object goes.
  auto again = b.find(object_key(ns, name));
  if (again != b.end() && kube::value_at(again->second, {"metadata", "deletionTimestamp"}) &&
      !has_finalizers(r, again->second)) {
    return erase_object(r, again, "Background");
  }
  if (again == b.end()) return not_found(r, name);
  return again->second;
}

Result<Object> Store::mutate(const ResourceInfo& r, const std::string& ns, const std::string& name,
                             const std::function<void(Object&)>& fn) {
  const Object* cur = find(r, ns, name);
  if (!cur) return not_found(r, name);
  Object next = *cur;
  fn(next);
  meta(next).erase("resourceVersion");
  return update(r, ns, std::move(next), UpdateMode::kAll);
}

bool Store::has_finalizers(const ResourceInfo& r, const Object& o) {
  const auto* f = kube::array_at(o, {"metadata", "finalizers"});
  if (f && !f->empty()) return true;
  if (r.ref.resource == "namespaces" && r.ref.group.empty()) {
    const auto* sf = kube::array_at(o, {"spec", "finalizers"});
    return sf && !sf->empty();
  }
  return false;
}

Result<Object> Store::remove(const ResourceInfo& r, const std::string& ns_in, const std::string& name,
                             const std::string& precondition_rv, const std::string& propagation,
                             const std::string& precondition_uid) {
  std::string ns = r.ref.namespaced ? ns_in : "";
  Bucket& b = bucket(r);
  auto it = b.find(object_key(ns, name));
  if (it == b.end()) return not_found(r, name);
  // DeleteOptions.preconditions (apimachinery's Preconditions check in the registry store).
  auto failed = [&](const std::string& what, const std::string& want, const std::string& have) {
    Error e(Errc::kConflict, "Precondition failed: " + what + " in precondition: " + want + ", " + what +
                                 " in object meta: " + have);
    e.http_status = 409;
    e.reason = "Conflict";
    return e;
  };
  if (!precondition_uid.empty() && precondition_uid != str(it->second, {"metadata", "uid"})) {
    return failed("UID", precondition_uid, str(it->second, {"metadata", "uid"}));
  }
  if (!precondition_rv.empty() && precondition_rv != str(it->second, {"metadata", "resourceVersion"})) {
    return failed("ResourceVersion", precondition_rv, str(it->second, {"metadata", "resourceVersion"}));
  }
  if (propagation == "Foreground") {
    if (auto done = delete_foreground(r, it)) return std::move(*done);
  }
  if (has_finalizers(r, it->second)) {
    // Graceful deletion: mark the object; it stays until its finalizers are removed.
    if (kube::value_at(it->second, {"metadata", "deletionTimestamp"})) return it->second;
    Object old = it->second;
    Object& cur = it->second;
    meta(cur)["deletionTimestamp"] = format_rfc3339(WallClock::now());
    meta(cur)["deletionGracePeriodSeconds"] = 0;
    if (r.ref.resource == "namespaces" && r.ref.group.empty()) {
      auto& st = cur["status"];
      if (!st.is_object()) st = json::object();
      st.as_object()["phase"] = "Terminating";
    }
    meta(cur)["resourceVersion"] = std::to_string(++rv_);
    Object marked = cur;
    emit(r, "MODIFIED", marked, old);
    return marked;
  }
  return erase_object(r, it, propagation);
}

Object Store::erase_object(const ResourceInfo& r, Bucket::iterator it, const std::string& propagation) {
  Bucket& b = bucket(r);
  Object gone = std::move(it->second);
  b.erase(it);
  Object old = gone;
  meta(gone)["resourceVersion"] = std::to_string(++rv_);
  if (!kube::value_at(gone, {"metadata", "deletionTimestamp"})) meta(gone)["deletionTimestamp"] = format_rfc3339(WallClock::now());
  std::string uid = str(gone, {"metadata", "uid"});
  foreground_.erase(uid);
  emit(r, "DELETED", gone, old);
  collect_garbage(uid, propagation);
  // An owner deleted in the foreground may have been waiting for this one.
  if (!foreground_.empty()) {
    if (const auto* owners = kube::array_at(gone, {"metadata", "ownerReferences"})) {
      std::vector<std::string> uids;
      for (const auto& ref : *owners) uids.emplace_back(kube::str_at(ref, {"uid"}));
      for (const auto& u : uids) finish_foreground(u);
    }
  }
  return gone;
}

void Store::note_owners(const Object& o) {
  const auto* owners = kube::array_at(o, {"metadata", "ownerReferences"});
  if (!owners) return;
  for (const auto& ref : *owners) {
    auto uid = kube::str_at(ref, {"uid"});
    if (!uid.empty()) owner_uids_.insert(std::string(uid));
  }
}

void Store::collect_garbage(const std::string& owner_uid, const std::string& propagation) {
  if (!owner_uids_.contains(owner_uid)) return;  // nothing ever named it as an owner
  for (const auto& info : registry_.all()) {
    std::vector<std::pair<std::string, std::string>> dependents;
    for (const Object* o : all(info)) {
      const auto* owners = kube::array_at(*o, {"metadata", "ownerReferences"});
      if (!owners) continue;
      for (const auto& ref : *owners) {
        if (kube::str_at(ref, {"uid"}) == owner_uid) {
          dependents.emplace_back(str(*o, {"metadata", "namespace"}), str(*o, {"metadata", "name"}));
        }
      }
    }
    for (const auto& [ns, n] : dependents) {
      if (propagation == "Orphan") {
        (void)mutate(info, ns, n, [&](Object& o) {
          json::array kept;
          for (const auto& ref : meta(o)["ownerReferences"].get_array()) {
            if (kube::str_at(ref, {"uid"}) != owner_uid) kept.push_back(ref);
          }
          if (kept.empty()) meta(o).erase("ownerReferences");
          else meta(o)["ownerReferences"] = kept;
        });
      } else {
        (void)remove(info, ns, n, {}, propagation);
      }
    }
  }
}

std::vector<const Object*> Store::all(const ResourceInfo& r, const std::string& ns) const {
  std::vector<const Object*> out;
  const Bucket* b = bucket_if(r);
  if (!b) return out;
  if (ns.empty() || !r.ref.namespaced) {
    for (const auto& [k, v] : *b) out.push_back(&v);
  } else {
    std::string prefix = ns + "/";
    for (auto it = b->lower_bound(prefix); it != b->end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      out.push_back(&it->second);
    }
  }
  return out;
}

std::optional<Store::Bucket> Store::bucket_at(const ResourceInfo& r, int64_t rv) const {
  if (rv < compacted_rv_) return std::nullopt;
  const Bucket* cur = bucket_if(r);
  Bucket b = cur ? *cur : Bucket{};
  // Undo, newest first, every change made after rv.
  for (auto ev = history_.rbegin(); ev != history_.rend() && ev->rv > rv; ++ev) {
    if (ev->resource != &r) continue;
    std::string key = object_key(r.ref.namespaced ? str(ev->object, {"metadata", "namespace"}) : "",
                                 str(ev->object, {"metadata", "name"}));
    if (ev->type == "ADDED") b.erase(key);
    else b[key] = ev->old;
  }
  return b;
}

namespace {
// The continue token, as the real API server writes it: base64 of
// {"v":"meta.k8s.io/v1","rv":<list rv>,"start":"<next key>"}.
std::string continue_token(int64_t rv, const std::string& start) {
  return base64_encode(json::serialize(json::object{{"v", "meta.k8s.io/v1"}, {"rv", rv}, {"start", start}}));
}
}  // namespace

Result<ListPage> Store::list(const ResourceInfo& r, const std::string& ns, const kube::LabelSelector& ls,
                             const kube::FieldSelector& fs, int64_t limit, const std::string& cont) const {
  ListPage page;
  page.rv = rv_;
  std::string start;
  std::optional<Bucket> snapshot;
  const Bucket* b = bucket_if(r);
  if (!cont.empty()) {
    auto bad = [] {
      Error e(Errc::kBadRequest, "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)");
      e.http_status = 400;
      e.reason = "BadRequest";
      return e;
    };
    auto raw = base64_decode(cont);
    if (!raw) return bad();
    boost::system::error_code ec;
    json::value tok = json::parse(*raw, ec);
    if (ec || !tok.is_object() || !kube::int_at(tok, {"rv"})) return bad();
    int64_t token_rv = *kube::int_at(tok, {"rv"});
    start = std::string(kube::str_at(tok, {"start"}));
    snapshot = bucket_at(r, token_rv);
    if (!snapshot) {
      Error e(Errc::kGone, "The provided continue parameter is too old to display a consistent list result. You can start "
                           "a new list without the continue parameter, or use the continue token in this response to "
                           "retrieve the remainder of the results. Continuing with the provided token results in an "
                           "inconsistent list - objects that were created, modified, or deleted between the time the "
                           "first chunk was returned and now may show up in the list.");
      e.http_status = 410;
      e.reason = "Expired";
      return e;
    }
    page.rv = token_rv;
    b = &*snapshot;
  }
  if (!b) return page;
  std::string prefix = (r.ref.namespaced && !ns.empty()) ? ns + "/" : "";
  auto it = start.empty() ? b->lower_bound(prefix) : b->lower_bound(start);
  for (; it != b->end(); ++it) {
    if (!prefix.empty() && it->first.compare(0, prefix.size(), prefix) != 0) break;
    const Object& o = it->second;
    if (!ls.matches(labels(o)) || !fs.matches(o)) continue;
    if (limit > 0 && static_cast<int64_t>(page.items.size()) == limit) {
      page.continue_token = continue_token(page.rv, it->first);
      break;
    }
    page.items.push_back(o);
  }
  return page;
}

bool Store::matches(const Watch& w, const Object& obj) const {
  if (w.resource->ref.namespaced && !w.spec.ns.empty() && str(obj, {"metadata", "namespace"}) != w.spec.ns) {
    return false;
  }
  return w.spec.labels.matches(labels(obj)) && w.spec.fields.matches(obj);
}

void Store::emit(const ResourceInfo& r, const std::string& type, const Object& obj, const Object& old) {
  StoreEvent ev{type, rv_, obj, old, &r};
  history_.push_back(ev);
  while (history_.size() > history_limit_) {
    compacted_rv_ = history_.front().rv;
    history_.pop_front();
  }
  std::vector<std::pair<std::function<void(const StoreEvent&)>, StoreEvent>> deliveries;
  for (auto& [id, w] : watches_) {
    if (w.resource != &r) continue;
    bool now = matches(w, obj);
    bool before = !old.empty() && matches(w, old);
    if (type == "MODIFIED" && now != before) {
      // Entering or leaving the selection looks like ADDED/DELETED to this watcher.
      StoreEvent t = ev;
      t.type = now ? "ADDED" : "DELETED";
      deliveries.emplace_back(w.spec.deliver, std::move(t));
    } else if (now || (type == "DELETED" && before)) {
      deliveries.emplace_back(w.spec.deliver, ev);
    }
  }
  for (auto& [fn, e] : deliveries) fn(e);
  for (size_t i = 0; i < listeners_.size(); ++i) listeners_[i](ev);
}

Result<uint64_t> Store::watch(const ResourceInfo& r, WatchSpec spec) {
  Watch w{&r, std::move(spec)};
  if (w.spec.from_rv >= 0 && w.spec.from_rv < compacted_rv_) {
    Error e(Errc::kGone, "too old resource version: " + std::to_string(w.spec.from_rv) + " (" +
                             std::to_string(compacted_rv_) + ")");
    e.http_status = 410;
    e.reason = "Expired";
    return e;
  }
  uint64_t id = next_watch_++;
  if (w.spec.from_rv < 0) {
    for (const Object* o : all(r, w.spec.ns)) {
      if (matches(w, *o)) w.spec.deliver(StoreEvent{"ADDED", rv_, *o, {}, &r});
    }
  } else {
    for (const auto& ev : history_) {
      if (ev.rv <= w.spec.from_rv || ev.resource != &r) continue;
      bool now = matches(w, ev.object);
      bool before = !ev.old.empty() && matches(w, ev.old);
      if (ev.type == "MODIFIED" && now != before) {
        StoreEvent t = ev;
        t.type = now ? "ADDED" : "DELETED";
        w.spec.deliver(t);
      } else if (now || (ev.type == "DELETED" && before)) {
        w.spec.deliver(ev);
      }
    }
  }
  watches_.emplace(id, std::move(w));
  return id;
}

void Store::unwatch(uint64_t id) { watches_.erase(id); }

}  // namespace kvb::testcluster
