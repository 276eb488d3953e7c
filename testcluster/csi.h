// Storage as the test cluster simulates it: the CSI external-snapshotter
// (VolumeSnapshot -> VolumeSnapshotContent, status.creationTime after the
// class's cutLatency: that instant is the cut; readyToUse and restoreSize after
// readyLatency; failures as status.error), PVC binding (including restores
// from a VolumeSnapshot dataSource), CDI DataVolumes, and the guest data model:
// every claim has a content generation that advances while its VM runs
// unfrozen, is captured by a snapshot at its cut, and is inherited by claims
// restored from that snapshot. The bytes behind claims and snapshots live in
// the VolumeStore (storage/volume_store.h): the generation is written into
// the claim's file lazily (sync_bytes) before a cut and before any read.
#pragma once

#include "testcluster/cluster.h"
#include "testcluster/storage/volume_store.h"

#include <functional>
#include <map>
#include <memory>
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
  // /testcluster/v1/volumes. The oracle's SHA-256 digests (which read every
  // data extent of a file) are added only for the entries `hash` selects.
  boost::json::object volumes_json(const VolumeHashFilter& hash = VolumeHashFilter());
  // The claim's file brought up to its current generation (before reading it).
  Status sync_bytes(const std::string& ns, const std::string& claim);
  VolumeStore& volume_store() { return *bytes_; }
  // Who cuts a claim's snapshots (a real guest: QMP blockdev-backup); an
  // empty Copier means the default reflink/extent copy.
  void set_cut_copier(std::function<VolumeStore::Copier(const std::string& ns, const std::string& claim)> f) {
    copier_for_ = std::move(f);
  }

 private:
  struct VolumeData {
    int64_t base = 0;
    std::string vm;          // attached guest, empty when detached
    int64_t attach_ms = 0;
    int64_t restored_from = -1;
    std::string restored_snapshot;
    std::string writer;      // the last guest that wrote the volume
  };

  void bind_claim(const std::string& ns, const std::string& name);
  void retry_pending_claims(const std::string& ns);
  void reconcile_datavolume(const std::string& ns, const std::string& name);
  void start_snapshot(const std::string& ns, const std::string& name);
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
  std::unique_ptr<VolumeStore> bytes_;
  std::function<VolumeStore::Copier(const std::string&, const std::string&)> copier_for_;
  std::map<std::string, VolumeData> volumes_;                       // "ns/claim"
  std::map<std::string, std::vector<std::shared_ptr<Timer>>> timers_;  // "ns/snapshot"
  struct StorageSnapshot {
    int64_t generation = 0;
    std::string size;
    int64_t cut_ns = 0;
  };
  std::map<std::string, StorageSnapshot> handles_;  // snapshotHandle -> the storage's snapshot
};

// Parses a Kubernetes quantity ("10Gi", "500M", "1073741824") into bytes.
int64_t parse_quantity(const std::string& q);

}  // namespace kvb::testcluster
