// Storage as the test cluster simulates it: the CSI external-snapshotter
// (VolumeSnapshot -> VolumeSnapshotContent, status.creationTime after the
// class's cutLatency: that instant is the cut; readyToUse and restoreSize after
// readyLatency; failures as status.error), PVC binding (including restores
// from a VolumeSnapshot dataSource), CDI DataVolumes, and the guest data model:
// every claim has a content generation that advances while its VM runs
// unfrozen, is captured by a snapshot at its cut, and is inherited by claims
// restored from that snapshot (dataSource or dataSourceRef) or cloned from it.
//
// As external-snapshotter does: a failed cut sets status.error on the content
// and the snapshot and is retried with exponential backoff (1 s doubling to
// 5 min); a later success clears the error. Snapshots carry the
// volumesnapshot-as-source-protection and volumesnapshot-bound-protection
// finalizers, contents volumesnapshotcontent-bound-protection: a deleted
// snapshot stays (deletionTimestamp) while a Pending claim restores from it,
// and while its content's cut is in flight. Contents record sourceVolumeMode;
// a claim whose volumeMode differs stays Pending with ProvisioningFailed, as
// external-provisioner refuses it. Claims of a WaitForFirstConsumer class bind
// once a consumer is chosen (volume.kubernetes.io/selected-node).
//
// The bytes behind claims and snapshots live in the VolumeStore
// (storage/volume_store.h): the generation is written into the claim's file
// lazily (sync_bytes) before a cut and before any read.
#pragma once

#include "testcluster/cluster.h"
#include "testcluster/storage/volume_store.h"

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace kvb::testcluster {

struct Guest;

// Which entries of /testcluster/v1/volumes get the oracle's SHA-256.
struct VolumeHashFilter {
  bool on = false;
  std::string ns, pvc, volume_snapshot;  // empty: any
};

class Csi {
 public:
  explicit Csi(Cluster& c);
  ~Csi();

  void on_change(const StoreEvent& e);
  // A claim that exists and is bound from the start (scenario volumes).
  Status create_claim(const std::string& ns, const std::string& name, const std::string& size,
                      const std::string& storage_class);
  void attach(const std::string& ns, const std::string& claim, const Guest* g);
  void detach(const std::string& ns, const std::string& claim);
  int64_t generation(const std::string& ns, const std::string& claim) const;
  // The claim's storage class binds on first consumer and none is chosen yet.
  bool waits_for_consumer(const Object& pvc) const;
  // /testcluster/v1/volumes. The oracle's SHA-256 digests (which read every
  // data extent of a file) are added only for the entries `hash` selects.
  boost::json::object volumes_json(const VolumeHashFilter& hash = VolumeHashFilter());
  // The claim's file brought up to its current generation (before reading it).
  Status sync_bytes(const std::string& ns, const std::string& claim);
  VolumeStore& volume_store() { return *bytes_; }
  // Where a snapshot's cut spends the loop thread's time: how late the cut
  // timer fired after its cutLatency (queued behind other work), the file
  // work of the cut (sync_bytes + the store's copy), and the whole cut()
  // (the two status writes and their watch fan-out included). For a VM
  // frozen when its snapshot is created: from the freeze to the create
  // (the exec's answer, the client, the create's wait to be read).
  struct CutStats {
    LatencyStats lateness, file_work, total, frozen_to_create;
  };
  const CutStats& cut_stats() const { return cut_stats_; }

 private:
  struct VolumeData {
    int64_t base = 0;
    std::string vm;          // attached guest, empty when detached
    int64_t attach_ms = 0;
    int64_t restored_from = -1;
    std::string restored_snapshot;
    std::string writer;      // the last guest that wrote the volume
    bool real_guest = false; // the disk of a real guest (guest: qemu): only QEMU writes it
  };

  void bind_claim(const std::string& ns, const std::string& name);
  void retry_pending_claims(const std::string& ns);
  void start_snapshot(const std::string& ns, const std::string& name);
  // Deletion with finalizers (csi_deletion.cpp).
  void snapshot_deleting(const std::string& ns, const std::string& name);
  void content_deleting(const std::string& name);
  void content_gone(const Object& content);
  void recheck_deleting_snapshots(const std::string& ns);
  bool restoring_from(const std::string& ns, const std::string& snapshot) const;
  void remove_finalizer(const ResourceInfo& r, const std::string& ns, const std::string& name, const std::string& finalizer);
  void add_finalizers(const ResourceInfo& r, const std::string& ns, const std::string& name, const std::vector<std::string>& fs);
  void retry_cut(const std::string& ns, const std::string& name, const std::string& content, const std::string& claim,
                 const std::string& vm, Duration ready_latency);
  // Pre-provisioned snapshots (restores into another namespace): a content
  // naming an existing storage snapshot by spec.source.snapshotHandle, and a
  // VolumeSnapshot bound to it by spec.source.volumeSnapshotContentName.
  void provision_static_content(const std::string& name);
  void bind_static_snapshot(const std::string& ns, const std::string& name, const std::string& content);
  void snapshot_error(const std::string& ns, const std::string& name, const std::string& message);
  void cut(const std::string& ns, const std::string& name, const std::string& content, const std::string& claim,
           const std::string& vm, Duration ready_latency);
  const Object* find_snapshot_class(const std::string& explicit_name, const std::string& driver) const;
  std::string driver_of_claim(const Object& pvc) const;
  std::string vm_using_claim(const std::string& ns, const std::string& claim) const;

  Status create_bytes(const std::string& ns, const std::string& name, const boost::json::value& pvc, int64_t size,
                      VolumeData& data);

  Cluster& c_;
  CutStats cut_stats_;
  std::unique_ptr<VolumeStore> bytes_;
  std::map<std::string, VolumeData> volumes_;                       // "ns/claim"
  // "ns/claim" of every claim whose last event showed it not Bound: what
  // retry_pending_claims() tries again (a scan of every claim per ready
  // snapshot was the loop's largest cost at 2,000 VMs).
  std::set<std::string> unbound_;
  std::map<std::string, std::vector<std::shared_ptr<Timer>>> timers_;  // "ns/snapshot"
  struct StorageSnapshot {
    int64_t generation = 0;
    std::string size;
    int64_t cut_ns = 0;
  };
  std::map<std::string, StorageSnapshot> handles_;  // snapshotHandle -> the storage's snapshot
  // Snapshots of a real guest's disk (guest: qemu): a QMP drive-backup started at
  // the cut, and the ext4 oracle on the copy.
  struct GuestCut {
    std::string claim;
    std::string snapshot;
    std::filesystem::path file;
    bool frozen_at_cut = false;  // the model's view at the cut instant
    std::string state = "Copying";  // Copying | Checked | Failed
    bool fs_clean = false;
    bool needs_recovery = false;
    int fsck_exit = -1;
    std::string error;
  };
  std::map<std::string, GuestCut> guest_cuts_;  // "ns/snapshot"
  void cut_guest_disk(const std::string& ns, const std::string& name, const std::string& content,
                      const std::string& claim, const std::string& vm, bool frozen, std::function<void()> ready);
  std::map<std::string, Duration> backoff_;         // "ns/snapshot": next retry delay after a failed cut
  std::set<std::string> cutting_;                   // contents whose cut is in flight (being created)
  std::set<std::string> deleting_;                  // "ns/snapshot": deleted, held by finalizers
};

// external-snapshotter's finalizers (pkg/utils/util.go).
inline constexpr const char* kSnapshotAsSourceFinalizer = "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection";
inline constexpr const char* kSnapshotBoundFinalizer = "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection";
inline constexpr const char* kContentFinalizer = "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection";

// Parses a Kubernetes quantity ("10Gi", "500M", "1073741824") into bytes.
int64_t parse_quantity(const std::string& q);

}  // namespace kvb::testcluster
