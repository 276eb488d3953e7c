#include "restore/vm_restore.h"

#include "kube/object.h"
#include "kube/resource.h"
#include "kube/watch.h"
#include "kubevirt/resources.h"
#include "kubevirt/cdi_upload.h"
#include "restore/transform.h"
#include "restore/upload.h"

#include <mutex>
#include <thread>

#include <boost/json.hpp>

namespace kvb::restore {
namespace json = boost::json;
namespace res = kube::resources;

struct VmRestore::Impl {
  Impl(std::shared_ptr<kube::Client> client, const RestoreSpec& spec, const VmToRestore& vm, VmRestoreRecord& rec,
       Checkpoint checkpoint, std::stop_token stop, VolumeUploader* uploader)
      : client_(std::move(client)), spec_(spec), vm_(vm), rec_(rec), checkpoint_(std::move(checkpoint)), stop_(stop),
        uploader_(uploader) {}

  Status run() {
    KVB_CHECK(enter(RestoreStage::kCreating));
    KVB_CHECK(timed("configs", [&] { return restore_configs(); }));
    KVB_CHECK(timed("snapshots", [&] { return import_snapshots(); }));
    KVB_CHECK(timed("claims", [&] { return create_claims(); }));
    KVB_CHECK(timed("uploads", [&] { return upload_volumes(); }));
    KVB_CHECK(timed("bound", [&] { return wait_claims(); }));
    if (vm_.existing) {
      KVB_CHECK(enter(RestoreStage::kReplacing));  // from here the VM in the way may be gone: recover completes
      KVB_CHECK(timed("replace", [&] { return replace_existing(); }));
    }
    KVB_CHECK(enter(RestoreStage::kCreatingVm));
    KVB_CHECK(timed("vm", [&] { return create_vm(); }));
    KVB_CHECK(timed("running", [&] { return wait_running(); }));
    return enter(RestoreStage::kDone);
  }

  // Runs one stage and adds its wall-clock time to the VM's record (failed or not).
  template <typename F>
  Status timed(const char* stage, F&& f) {
    Stopwatch clock;
    Status st = f();
    add_millis(rec_.millis, stage, clock.lap());
    return st;
  }

  Status enter(RestoreStage stage) {
    rec_.stage = stage;
    return checkpoint_();
  }

  // After a failure: delete what this VM's restore created, newest first, and
  // start again a VM in the way that was stopped but not deleted.
  void undo() {
    Stopwatch clock;
    undo_objects();
    add_millis(rec_.millis, "cleanup", clock.lap());
  }

  void undo_objects() {
    if (stopped_original_ && !replaced_) {
      const auto& old = *vm_.existing;
      json::object spec_patch{{"runStrategy", nullptr}, {"running", nullptr}};
      if (const auto* spec = kube::object_at(old, {"spec"})) {
        for (const char* k : {"runStrategy", "running"}) {
          if (spec->contains(k)) spec_patch[k] = spec->at(k);
        }
      }
      auto r = client_->patch(kubevirt::kVirtualMachines, vm_.ns, vm_.name, kube::PatchType::kMerge,
                              json::object{{"spec", spec_patch}});
      if (r) {
        rec_.problems.push_back("the VM in the way was stopped, then started again as it was");
      } else {
        rec_.problems.push_back("the VM in the way was stopped and could not be started again: " + r.error().message);
      }
    }
    for (auto it = rec_.created.rbegin(); it != rec_.created.rend(); ++it) {
      const kube::ResourceRef* ref = ref_of(it->resource);
      if (!ref) continue;
      if (replaced_ && it->resource != kubevirt::kVirtualMachines.resource) {
        // The VM these claims replace is gone: they hold its data now; keep them.
        rec_.problems.push_back("kept " + it->resource + " " + it->ns + "/" + it->name +
                                ": the replaced VM is deleted and this restore holds its data");
        continue;
      }
      auto r = client_->remove(*ref, it->ns, it->name);
      if (r || r.error().code == Errc::kNotFound) {
        it->removed = true;
      } else {
        rec_.problems.push_back("could not remove " + it->resource + " " + it->ns + "/" + it->name + ": " + r.error().message);
      }
    }
  }

  static const kube::ResourceRef* ref_of(const std::string& resource) {
    for (const auto* r : {&res::kSecrets, &res::kConfigMaps, &res::kVolumeSnapshots, &res::kVolumeSnapshotContents,
                          &res::kPersistentVolumeClaims, &kubevirt::kDataVolumes,
                          &kubevirt::kVirtualMachines}) {
      if (r->resource == resource) return r;
    }
    return nullptr;
  }

  Status create(const kube::ResourceRef& ref, const std::string& ns, const json::object& obj) {
    kube::CallOptions o;
    o.repeatable = true;  // named: a repeat that finds the object this restore labelled is success
    std::string name(kube::name_of(obj));
    // Named in the record before it can exist: a kill right after the POST leaves nothing unlisted.
    bool listed = false;
    for (const auto& c : rec_.created) listed = listed || (c.resource == ref.resource && c.ns == ns && c.name == name);
    if (!listed) {
      rec_.created.push_back(CreatedObject{ref.resource, ns, name, false});
      KVB_CHECK(checkpoint_());
    }
    auto r = client_->create(ref, ns, obj, o);
    if (!r && r.error().code == Errc::kAlreadyExists && kube::label_of(obj, kRestoreLabel) == spec_.name) {
      auto existing = client_->get(ref, ns, name);
      if (existing && kube::label_of(*existing, kRestoreLabel) == spec_.name) r = *existing;
    }
    if (!r) return r.error().with_context("creating " + ref.resource + " " + (ns.empty() ? "" : ns + "/") + name);
    return ok();
  }

  static ClaimRecord claim_record(const VolumeToRestore& v, const std::string& snapshot) {
    ClaimRecord c;
    c.volume = v.source.name;
    c.claim = v.claim;
    c.source_claim = v.source.pvc;
    c.volume_snapshot = snapshot;
    c.storage_class = v.storage_class;
    c.size = v.size;
    c.phase = "Pending";
    return c;
  }

  Status restore_configs() {
    for (const auto& c : vm_.configs) {
      if (c.exists_identical) continue;
      std::string name(kube::name_of(c.object));
      if (c.exists_different) {  // --existing replace (the plan refused otherwise)
        auto live = client_->get(*c.resource, vm_.ns, name);
        if (!live) return live.error();
        json::object o = c.object;
        o["metadata"].as_object()["resourceVersion"] = kube::str_at(*live, {"metadata", "resourceVersion"});
        auto r = client_->update(*c.resource, vm_.ns, o);
        if (!r) return r.error().with_context("replacing " + c.resource->resource + " " + vm_.ns + "/" + name);
        rec_.replaced.push_back(c.resource->resource + " " + vm_.ns + "/" + name);
        continue;
      }
      KVB_CHECK(create(*c.resource, vm_.ns, c.object));
    }
    return ok();
  }

  Status import_snapshots() {
    for (const auto& v : vm_.volumes) {
      if (!v.import) continue;
      KVB_CHECK(create(res::kVolumeSnapshotContents, "",
                       imported_content(v.content, v.driver, v.source.snapshot_class, v.handle, vm_.ns, v.snapshot, spec_.name)));
      KVB_CHECK(create(res::kVolumeSnapshots, vm_.ns,
                       imported_snapshot(vm_.ns, v.snapshot, v.content, v.source.snapshot_class, spec_.name)));
    }
    for (const auto& v : vm_.volumes) {
      if (!v.import) continue;
      std::string failed;
      auto r = kube::wait_for_object(
          client_, res::kVolumeSnapshots, vm_.ns, v.snapshot,
          [&](const json::object* o) {
            if (!o) return false;
            if (auto e = kube::str_at(*o, {"status", "error", "message"}); !e.empty()) failed = std::string(e);
            return !failed.empty() || kube::bool_at(*o, {"status", "readyToUse"}).value_or(false);
          },
          spec_.bind_timeout, stop_);
      if (!r) return r.error().with_context("waiting for VolumeSnapshot " + vm_.ns + "/" + v.snapshot);
      if (!failed.empty()) return Error(Errc::kInternal, "VolumeSnapshot " + vm_.ns + "/" + v.snapshot + ": " + failed);
    }
    return ok();
  }

  Status create_claims() {
    for (const auto& v : vm_.volumes) {
      if (v.from_repository) {
        kubevirt::UploadVolume u;
        u.ns = vm_.ns;
        u.name = v.claim;
        u.bytes = static_cast<uint64_t>(quantity_bytes(v.size).value_or(static_cast<int64_t>(v.copy.bytes)));
        u.storage_class = v.storage_class;
        u.volume_mode = v.copy.volume_mode;
        if (const auto* modes = kube::array_at(v.saved_pvc, {"spec", "accessModes"})) {
          for (const auto& m : *modes) {
            if (m.is_string()) u.access_modes.emplace_back(m.as_string());
          }
        }
        u.wait_for_first_consumer = v.wait_for_first_consumer;
        u.labels[kRestoreLabel] = spec_.name;
        u.annotations[kRestoredFromAnnotation] = spec_.backup + "/" + vm_.source.ns + "/" + vm_.source.name + "/" + v.source.name;
        KVB_CHECK(create(kubevirt::kDataVolumes, vm_.ns, kubevirt::upload_datavolume(u)));
        ClaimRecord cr = claim_record(v, "");
        cr.data_source = "repository";
        cr.repository_snapshot = v.copy.repository_snapshot;
        rec_.claims.push_back(std::move(cr));
        continue;
      }
      ClaimSpec c{vm_.ns, v.claim, v.snapshot, v.storage_class, v.size, spec_.name};
      KVB_CHECK(create(res::kPersistentVolumeClaims, vm_.ns, restored_claim(v.saved_pvc, c)));
      rec_.claims.push_back(claim_record(v, v.snapshot));
    }
    return ok();
  }

  // Every volume from the repository uploaded, up to spec.parallel_uploads
  // at once; after a failure no other upload starts, and the first failure
  // is returned once those running have ended (none is left running),
  // naming the volume.
  Status upload_volumes() {
    std::vector<size_t> todo;
    for (size_t i = 0; i < vm_.volumes.size(); ++i) {
      if (vm_.volumes[i].from_repository) todo.push_back(i);
    }
    if (todo.empty()) return ok();
    if (!uploader_) {
      // Completing an interrupted restore without the repository: only uploads that are done.
      for (size_t i : todo) {
        auto dv = client_->get(kubevirt::kDataVolumes, vm_.ns, vm_.volumes[i].claim);
        if (!dv || kube::str_at(*dv, {"status", "phase"}) != "Succeeded") {
          return Error(Errc::kInvalidArgument, "volume " + vm_.volumes[i].source.name + ": DataVolume " + vm_.ns + "/" +
                                                   vm_.volumes[i].claim + " is not uploaded and the repository is not open");
        }
      }
      return ok();
    }
    std::mutex mu;
    size_t next = 0;
    std::vector<std::string> failures;
    Errc code = Errc::kInternal;
    auto worker = [&] {
      for (;;) {
        size_t i;
        {
          std::lock_guard lk(mu);
          if (next >= todo.size() || !failures.empty()) return;  // after a failure the VM fails: start no more
          i = todo[next++];
        }
        const auto& v = vm_.volumes[i];
        ClaimRecord cr = rec_.claims[i];  // written back under the lock
        auto st = uploader_->upload(vm_.ns, v.claim, v.copy, cr, stop_);
        std::lock_guard lk(mu);
        rec_.claims[i].sha256 = cr.sha256;
        rec_.claims[i].uploaded_bytes = cr.uploaded_bytes;
        rec_.claims[i].upload_attempts = cr.upload_attempts;
        rec_.claims[i].upload_ms = cr.upload_ms;
        rec_.claims[i].millis = cr.millis;
        if (!st) {
          code = st.error().code;
          failures.push_back("volume " + v.source.name + " (claim " + vm_.ns + "/" + v.claim + ", repository snapshot " +
                             v.copy.repository_snapshot + "): " + st.error().message);
        }
      }
    };
    size_t n = std::min<size_t>(std::max(1u, spec_.parallel_uploads), todo.size());
    std::vector<std::thread> threads;
    for (size_t t = 1; t < n; ++t) threads.emplace_back(worker);
    worker();
    for (auto& t : threads) t.join();
    KVB_CHECK(checkpoint_());
    if (!failures.empty()) {
      std::string msg = failures.front();
      if (failures.size() > 1) msg += " (and " + std::to_string(failures.size() - 1) + " more volumes failed)";
      return Error(code, msg);
    }
    return ok();
  }

  Status wait_claims() {
    for (size_t i = 0; i < vm_.volumes.size(); ++i) {
      const auto& v = vm_.volumes[i];
      if (v.wait_for_first_consumer && !v.from_repository) {
        rec_.claims[i].phase = "Pending (WaitForFirstConsumer: binds when the VM starts)";
        continue;
      }
      auto r = kube::wait_for_object(
          client_, res::kPersistentVolumeClaims, vm_.ns, v.claim,
          [](const json::object* o) { return o && kube::str_at(*o, {"status", "phase"}) == "Bound"; }, spec_.bind_timeout,
          stop_);
      if (!r) return r.error().with_context("waiting for PersistentVolumeClaim " + vm_.ns + "/" + v.claim + " to be bound");
      rec_.claims[i].phase = "Bound";
    }
    return ok();
  }

  // Stops and deletes the VM in the way and the claims it used; only called
  // once every restored claim is bound.
  Status replace_existing() {
    const auto& old = *vm_.existing;
    std::string key = vm_.ns + "/" + vm_.name;
    auto halted = client_->patch(kubevirt::kVirtualMachines, vm_.ns, vm_.name, kube::PatchType::kMerge,
                                 json::object{{"spec", json::object{{"runStrategy", "Halted"}, {"running", nullptr}}}});
    if (!halted && halted.error().code != Errc::kNotFound) return halted.error().with_context("stopping VirtualMachine " + key);
    stopped_original_ = true;
    auto gone = kube::wait_for_object(client_, kubevirt::kVirtualMachineInstances, vm_.ns, vm_.name,
                                      [](const json::object* o) { return o == nullptr; }, spec_.start_timeout, stop_);
    if (!gone) return gone.error().with_context("waiting for VirtualMachineInstance " + key + " to stop");
    kube::DeleteOptions d;
    d.propagation_policy = "Foreground";
    rec_.replaced.push_back("virtualmachines " + key);
    KVB_CHECK(checkpoint_());
    auto del = client_->remove(kubevirt::kVirtualMachines, vm_.ns, vm_.name, d);
    if (!del && del.error().code != Errc::kNotFound) {
      rec_.replaced.pop_back();
      return del.error().with_context("deleting VirtualMachine " + key);
    }
    replaced_ = true;  // from here on the restored claims are the VM's only copy outside the backup
    auto vm_gone = kube::wait_for_object(client_, kubevirt::kVirtualMachines, vm_.ns, vm_.name,
                                         [](const json::object* o) { return o == nullptr; }, spec_.start_timeout, stop_);
    if (!vm_gone) return vm_gone.error().with_context("waiting for VirtualMachine " + key + " to be deleted");
    // The claims the replaced VM used (its DataVolumes own theirs).
    if (const auto* vols = kube::array_at(old, {"spec", "template", "spec", "volumes"})) {
      for (const auto& v : *vols) {
        if (auto dv = kube::str_at(v, {"dataVolume", "name"}); !dv.empty()) {
          auto r = client_->remove(kubevirt::kDataVolumes, vm_.ns, dv);
          if (!r && r.error().code != Errc::kNotFound) rec_.problems.push_back("could not delete DataVolume " + std::string(dv));
          else rec_.replaced.push_back("datavolumes " + vm_.ns + "/" + std::string(dv));
        }
        std::string claim(kube::str_at(v, {"dataVolume", "name"}));
        if (claim.empty()) claim = std::string(kube::str_at(v, {"persistentVolumeClaim", "claimName"}));
        if (claim.empty()) continue;
        auto r = client_->remove(res::kPersistentVolumeClaims, vm_.ns, claim);
        if (!r && r.error().code != Errc::kNotFound) {
          rec_.problems.push_back("could not delete the replaced claim " + vm_.ns + "/" + claim + ": " + r.error().message);
        } else if (r) {
          rec_.replaced.push_back("persistentvolumeclaims " + vm_.ns + "/" + claim);
        }
      }
    }
    return ok();
  }

  Status create_vm() {
    VmRewrite w;
    w.ns = vm_.ns;
    w.name = vm_.name;
    for (const auto& v : vm_.volumes) w.claim_for_volume[v.source.name] = v.claim;
    w.run_strategy = spec_.run_strategy;
    w.strip_identity = (vm_.copy && !spec_.keep_mac) || spec_.isolate;
    w.isolate = spec_.isolate;
    w.restore = spec_.name;
    w.restored_from = spec_.backup + "/" + vm_.source.ns + "/" + vm_.source.name;
    if (spec_.isolate) rec_.problems.push_back("a verification copy: no network interfaces, MAC addresses and firmware UUID removed");
    else if (w.strip_identity) rec_.problems.push_back("a copy beside the original: MAC addresses and firmware UUID removed");
    return create(kubevirt::kVirtualMachines, vm_.ns, restored_vm(vm_.saved_vm, w));
  }

  Status wait_running() {
    if (!spec_.wait || vm_.run_strategy == "Halted" || vm_.run_strategy == "Manual") return ok();
    auto r = kube::wait_for_object(
        client_, kubevirt::kVirtualMachineInstances, vm_.ns, vm_.name,
        [](const json::object* o) { return o && kube::str_at(*o, {"status", "phase"}) == "Running"; }, spec_.start_timeout,
        stop_);
    if (!r) {
      rec_.problems.push_back("the VM was restored but did not start: " + r.error().message);
      return ok();  // the restore itself is done; the record says it did not start
    }
    return ok();
  }

  std::shared_ptr<kube::Client> client_;
  const RestoreSpec& spec_;
  const VmToRestore& vm_;
  VmRestoreRecord& rec_;
  Checkpoint checkpoint_;
  std::stop_token stop_;
  bool stopped_original_ = false;  // replace: the VM in the way was stopped
  bool replaced_ = false;          // replace: ... and deleted
  VolumeUploader* uploader_ = nullptr;
};


VmRestore::VmRestore(std::shared_ptr<kube::Client> client, const RestoreSpec& spec, const VmToRestore& vm, VmRestoreRecord& rec,
                     Checkpoint checkpoint, std::stop_token stop, VolumeUploader* uploader)
    : impl_(std::make_unique<Impl>(std::move(client), spec, vm, rec, std::move(checkpoint), stop, uploader)) {}
VmRestore::~VmRestore() = default;
Status VmRestore::run() { return impl_->run(); }
void VmRestore::undo() { impl_->undo(); }

}  // namespace kvb::restore
