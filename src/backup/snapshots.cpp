#include "backup/snapshots.h"

#include "kube/object.h"
#include "record/naming.h"

#include <boost/json.hpp>

namespace kvb::backup {
namespace json = boost::json;

Result<std::unique_ptr<SnapshotTracker>> SnapshotTracker::start(std::shared_ptr<kube::Client> client, const std::string& backup,
                                                                const std::string& run_uid,
                                                                const std::vector<std::string>& namespaces, bool all_namespaces) {
  std::unique_ptr<SnapshotTracker> t(new SnapshotTracker(client, backup, run_uid));
  kube::InformerOptions o;
  o.label_selector = std::string(record::kBackupUidLabel) + "=" + run_uid;
  std::vector<std::string> nss = all_namespaces ? std::vector<std::string>{""} : namespaces;
  for (const auto& ns : nss) t->informers_[ns] = kube::Informer::start(client, kube::resources::kVolumeSnapshots, ns, o);
  for (auto& [ns, inf] : t->informers_) {
    if (auto st = inf->wait_synced(std::chrono::steady_clock::now() + std::chrono::seconds(60)); !st) {
      return st.error().with_context("watching VolumeSnapshots" + (ns.empty() ? std::string() : " in " + ns));
    }
  }
  return t;
}

SnapshotTracker::~SnapshotTracker() {
  for (auto& [ns, inf] : informers_) inf->stop();
}

kube::Informer* SnapshotTracker::informer_for(const std::string& ns) {
  auto it = informers_.find(ns);
  if (it == informers_.end()) it = informers_.find("");
  return it == informers_.end() ? nullptr : it->second.get();
}

Result<json::object> SnapshotTracker::post(const VmPlan& vm, const VolumePlan& vol, const std::string& name) {
  json::object snap{
      {"apiVersion", "snapshot.storage.k8s.io/v1"},
      {"kind", "VolumeSnapshot"},
      {"metadata", json::object{{"name", name},
                                {"namespace", vm.vm.ns},
                                {"labels", json::object{{record::kBackupLabel, backup_},
                                                        {record::kBackupUidLabel, run_uid_},
                                                        {record::kVmLabel, record::label_value(vm.vm.name)}}},
                                {"annotations", json::object{{record::kVmAnnotation, vm.vm.name},
                                                             {record::kVolumeAnnotation, vol.volume.name}}}}},
      {"spec", json::object{{"volumeSnapshotClassName", vol.snapshot_class},
                            {"source", json::object{{"persistentVolumeClaimName", vol.volume.claim}}}}}};
  kube::CallOptions o;
  o.repeatable = true;  // named: a repeat that finds our own snapshot is success (below)
  o.critical = true;    // inside the freeze window: never queued behind ordinary requests
  auto r = client_->create(kube::resources::kVolumeSnapshots, vm.vm.ns, snap, o);
  if (r || r.error().code != Errc::kAlreadyExists) return r;
  // A retried POST may have succeeded the first time: an object of this run is ours.
  auto existing = client_->get(kube::resources::kVolumeSnapshots, vm.vm.ns, name, o);
  if (existing && kube::label_of(*existing, record::kBackupUidLabel) == run_uid_ &&
      kube::str_at(*existing, {"spec", "source", "persistentVolumeClaimName"}) == vol.volume.claim) {
    return existing;
  }
  return r;
}

Result<CreatedSnapshot> SnapshotTracker::create(const VmPlan& vm, const VolumePlan& vol) {
  std::string name = vol.snapshot_name;
  auto r = post(vm, vol, name);
  if (!r && r.error().code == Errc::kAlreadyExists) {
    // Taken by another run (a kept snapshot of a deleted backup of this name) or by someone else.
    name = record::snapshot_name(backup_, vm.vm.name, vol.volume.name, run_uid_.substr(0, 8));
    r = post(vm, vol, name);
  }
  if (!r) return r.error().with_context("creating VolumeSnapshot " + vm.vm.ns + "/" + name);
  return CreatedSnapshot{name, std::string(kube::str_at(*r, {"metadata", "uid"}))};
}

Status SnapshotTracker::wait(const std::string& ns, const std::vector<std::string>& names,
                             std::chrono::steady_clock::time_point deadline, std::stop_token stop, bool ready, const char* what) {
  kube::Informer* inf = informer_for(ns);
  if (!inf) return Error(Errc::kInternal, "no watch for namespace " + ns);
  std::string failed;
  std::vector<std::string> keys;
  for (const auto& n : names) keys.push_back(ns + "/" + n);
  auto st = inf->wait_keys(
      keys,
      [&](const kube::ObjectCache& cache) {
        for (const auto& n : names) {
          auto it = cache.find(ns + "/" + n);
          if (it == cache.end()) return false;
          if (auto err = kube::str_at(it->second, {"status", "error", "message"}); !err.empty()) {
            failed = "VolumeSnapshot " + ns + "/" + n + " failed: " + std::string(err);
            return true;
          }
          bool done = ready ? kube::bool_at(it->second, {"status", "readyToUse"}).value_or(false)
                            : !kube::str_at(it->second, {"status", "creationTime"}).empty();
          if (!done) return false;
        }
        return true;
      },
      deadline, stop);
  if (!failed.empty()) return Error(Errc::kInternal, failed);
  if (!st) {
    std::string pending;
    for (const auto& n : names) {
      auto obj = inf->get(ns + "/" + n);
      bool done = obj && (ready ? kube::bool_at(*obj, {"status", "readyToUse"}).value_or(false)
                                : !kube::str_at(*obj, {"status", "creationTime"}).empty());
      if (!done) pending += (pending.empty() ? "" : ", ") + n;
    }
    Error e = st.error();
    e.message = std::string(what) + " of " + pending + ": " + e.message;
    return e;
  }
  return ok();
}

Status SnapshotTracker::wait_cut(const std::string& ns, const std::vector<std::string>& names,
                                 std::chrono::steady_clock::time_point deadline, std::stop_token stop) {
  return wait(ns, names, deadline, stop, false, "waiting for the cut");
}

Status SnapshotTracker::wait_ready(const std::string& ns, const std::vector<std::string>& names,
                                   std::chrono::steady_clock::time_point deadline, std::stop_token stop) {
  return wait(ns, names, deadline, stop, true, "waiting for readyToUse");
}

std::optional<json::object> SnapshotTracker::get(const std::string& ns, const std::string& name) {
  kube::Informer* inf = informer_for(ns);
  return inf ? inf->get(ns + "/" + name) : std::nullopt;
}

Status SnapshotTracker::remove(const std::string& ns, const std::string& name) {
  auto r = client_->remove(kube::resources::kVolumeSnapshots, ns, name);
  if (!r && r.error().code != Errc::kNotFound) return r.error();
  return ok();
}

}  // namespace kvb::backup
