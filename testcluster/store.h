// Store: the test cluster's object database (what etcd + the generic API
// registry are for a real API server).
//
// It assigns uid, creationTimestamp, generateName suffixes, metadata.generation
// and a cluster-wide, strictly increasing resourceVersion; enforces optimistic
// concurrency (409 on a stale resourceVersion), namespace existence, and
// garbage collection by ownerReferences; serves lists with label/field
// selectors and limit/continue pagination; and keeps a bounded event history
// so that watches can start from a resourceVersion (410 Expired when it is
// older than the history). Listeners (the simulated controllers) see every
// change. Deleting an object with metadata.finalizers only sets its
// deletionTimestamp (MODIFIED); the update that empties the finalizers of such
// an object deletes it (DELETED), as the generic registry does. An admission
// hook (testcluster/controller_admission.cpp) defaults and validates API writes.
//
// Deletion follows the registry's rules: an object with metadata.finalizers
// (or a namespace with spec.finalizers) only gets a deletionTimestamp and stays
// until an update empties its finalizers; a namespace being deleted refuses new
// objects (403, as the NamespaceLifecycle admission plugin). DeleteOptions
// preconditions (uid, resourceVersion) are checked (409). A `continue` page is
// served from the state at the first page's resourceVersion, rebuilt from the
// event history (410 when the history no longer reaches it). A Foreground
// delete of an object with dependents adds the foregroundDeletion finalizer
// and a deletionTimestamp, deletes the dependents, and the object goes when
// none with blockOwnerDeletion is left (the garbage collector's
// processDeletingDependentsItem).
//
// Garbage collection scans the store for an object's dependents only when its
// uid was ever named in an ownerReferences (a set kept on every create and
// update, never shrunk): deleting a Lease or a VolumeSnapshot, which own
// nothing, costs no scan of thousands of objects (bench/backup_bench's scale
// run deletes one Lease per VM).
//
// Invariant: single-threaded; every method runs on the cluster's loop thread.
#pragma once

#include "common/error.h"
#include "kube/selector.h"
#include "testcluster/registry.h"

#include <boost/json/object.hpp>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>

namespace kvb::testcluster {

using Object = boost::json::object;

struct StoreEvent {
  std::string type;  // ADDED, MODIFIED, DELETED
  int64_t rv = 0;
  Object object;
  Object old;        // previous state for MODIFIED/DELETED
  const ResourceInfo* resource = nullptr;
};

enum class UpdateMode {
  kMain,    // PUT/PATCH of the resource: status changes ignored when it has a status subresource
  kStatus,  // PUT/PATCH of .../status: only status changes
  kAll,     // controllers: everything
};

struct ListPage {
  std::vector<Object> items;
  int64_t rv = 0;
  std::string continue_token;
};

struct WatchSpec {
  std::string ns;  // empty: all namespaces
  kube::LabelSelector labels;
  kube::FieldSelector fields;
  int64_t from_rv = -1;  // -1: now, with an ADDED event for every existing object
  std::function<void(const StoreEvent&)> deliver;
};

class Store {
 public:
  explicit Store(const Registry& registry, size_t history = 200'000);

  Result<Object> create(const ResourceInfo& r, const std::string& ns, Object obj);
  Result<Object> get(const ResourceInfo& r, const std::string& ns, const std::string& name) const;
  const Object* find(const ResourceInfo& r, const std::string& ns, const std::string& name) const;
  Result<Object> update(const ResourceInfo& r, const std::string& ns, Object obj, UpdateMode mode);
  // Applies fn to the stored object (controller-style); a no-op change writes nothing.
  Result<Object> mutate(const ResourceInfo& r, const std::string& ns, const std::string& name,
                        const std::function<void(Object&)>& fn);
  // propagation: "Background"/"Foreground" delete dependents, "Orphan" keeps them.
  Result<Object> remove(const ResourceInfo& r, const std::string& ns, const std::string& name,
                        const std::string& precondition_rv = {}, const std::string& propagation = {},
                        const std::string& precondition_uid = {});
  Result<ListPage> list(const ResourceInfo& r, const std::string& ns, const kube::LabelSelector& labels,
                        const kube::FieldSelector& fields, int64_t limit, const std::string& continue_token) const;
  std::vector<const Object*> all(const ResourceInfo& r, const std::string& ns = {}) const;

  Result<uint64_t> watch(const ResourceInfo& r, WatchSpec spec);
  void unwatch(uint64_t id);
  size_t watch_count() const { return watches_.size(); }

  void subscribe(std::function<void(const StoreEvent&)> listener) { listeners_.push_back(std::move(listener)); }
  // Admission: runs on every create (old == nullptr) and on every update that is
  // not a controller write (UpdateMode::kAll); may default fields of `next` or
  // refuse the write (the error is the API's answer).
  using Admission = std::function<Status(const ResourceInfo&, const Object* old, Object& next)>;
  void set_admission(Admission a) { admission_ = std::move(a); }
  // Called on every object about to be stored (old: nullptr on create): the
  // API server's defaulting and the fields a kubelet would fill in.
  void set_defaulter(std::function<void(const ResourceInfo&, Object&, const Object* old)> fn) { defaulter_ = std::move(fn); }
  int64_t resource_version() const { return rv_; }
  const Registry& registry() const { return registry_; }
  size_t object_count() const;

 private:
  struct Watch {
    const ResourceInfo* resource;
    WatchSpec spec;
  };
  using Bucket = std::map<std::string, Object>;  // "ns/name" -> object

  Bucket& bucket(const ResourceInfo& r) { return objects_[r.key()]; }
  const Bucket* bucket_if(const ResourceInfo& r) const;
  void emit(const ResourceInfo& r, const std::string& type, const Object& obj, const Object& old);
  bool matches(const Watch& w, const Object& obj) const;
  void collect_garbage(const std::string& owner_uid, const std::string& propagation);
  void note_owners(const Object& o);  // adds the uids o's ownerReferences name to owner_uids_
  std::unordered_set<std::string> owner_uids_;  // every uid ever named as an owner (a superset of the live ones)
  Error not_found(const ResourceInfo& r, const std::string& name) const;
  // The bucket as it was at resourceVersion rv (nullopt: the history no longer reaches it).
  std::optional<Bucket> bucket_at(const ResourceInfo& r, int64_t rv) const;
  static bool has_finalizers(const ResourceInfo& r, const Object& o);
  Object erase_object(const ResourceInfo& r, Bucket::iterator it, const std::string& propagation);
  // Foreground deletion (store_foreground.cpp).
  struct OwnerKey {
    const ResourceInfo* resource;
    std::string ns, name;
  };
  bool has_dependents(const std::string& owner_uid, bool blocking_only) const;
  std::optional<Result<Object>> delete_foreground(const ResourceInfo& r, Bucket::iterator it);
  void finish_foreground(const std::string& owner_uid);

  const Registry& registry_;
  std::map<std::string, Bucket> objects_;
  int64_t rv_ = 1000;
  std::deque<StoreEvent> history_;
  size_t history_limit_;
  int64_t compacted_rv_ = 0;
  std::map<uint64_t, Watch> watches_;
  uint64_t next_watch_ = 1;
  std::vector<std::function<void(const StoreEvent&)>> listeners_;
  Admission admission_;
  std::function<void(const ResourceInfo&, Object&, const Object*)> defaulter_;
  std::map<std::string, OwnerKey> foreground_;  // uid -> owner waiting for its blocking dependents
};

std::string object_key(const std::string& ns, const std::string& name);
std::string random_suffix(size_t n);
std::string new_uid();

}  // namespace kvb::testcluster
