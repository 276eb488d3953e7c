// Csi's part of the byte oracle (/testcluster/v1/volumes): every claim and
// storage snapshot with its size, generation, guest file-system checks and,
// for the ones a query selects, the SHA-256 of its bytes.
#include "kube/object.h"
#include "testcluster/csi.h"
#include "testcluster/kubevirt.h"

#include <boost/json.hpp>

namespace kvb::testcluster {
namespace json = boost::json;
using kube::resources::kVolumeSnapshotContents;

json::object Csi::volumes_json(const VolumeHashFilter& hash) {
  auto selected = [&](const std::string& ns, const std::string& pvc, const std::string& snap) {
    return hash.on && (hash.ns.empty() || hash.ns == ns) && (hash.pvc.empty() || hash.pvc == pvc) &&
           (hash.volume_snapshot.empty() || hash.volume_snapshot == snap);
  };
  json::array arr;
  for (const auto& [k, v] : volumes_) {
    auto slash = k.find('/');
    std::string ns = k.substr(0, slash), claim = k.substr(slash + 1);
    json::object o{{"namespace", ns}, {"pvc", claim}, {"generation", generation(ns, claim)}, {"vm", v.vm},
                   {"size", bytes_->claim_size(ns, claim)}};
    if (v.restored_from >= 0) {
      o["restoredFromGeneration"] = v.restored_from;
      o["restoredFromSnapshot"] = v.restored_snapshot;
    }
    if (selected(ns, claim, "") && hash.volume_snapshot.empty()) {
      auto h = sync_bytes(ns, claim) ? bytes_->claim_sha256(ns, claim) : Result<std::string>(Error(Errc::kIo, "sync failed"));
      o["sha256"] = h ? *h : "error: " + h.error().message;
    }
    json::array guest_snaps;
    for (const auto& [gk, gc] : guest_cuts_) {
      if (gc.claim != claim || gk.substr(0, gk.find('/')) != ns) continue;
      json::object s{{"snapshot", gc.snapshot}, {"file", gc.file.string()}, {"state", gc.state},
                     {"frozenAtCut", gc.frozen_at_cut}};
      if (gc.state == "Checked") {
        s["fsClean"] = gc.fs_clean;
        s["needsRecovery"] = gc.needs_recovery;
        s["e2fsckExit"] = gc.fsck_exit;
      }
      if (!gc.error.empty()) s["error"] = gc.error;
      guest_snaps.push_back(std::move(s));
    }
    if (!guest_snaps.empty()) o["guestSnapshots"] = std::move(guest_snaps);
    arr.push_back(std::move(o));
  }
  // Storage snapshots: the bytes of every cut, by the VolumeSnapshot(s) naming them.
  json::array snaps;
  for (const Object* vsc : c_.store().all(c_.resource(kVolumeSnapshotContents))) {
    json::value cv(*vsc);
    std::string handle(kube::str_at(cv, {"status", "snapshotHandle"}));
    if (handle.empty() || !bytes_->has_snapshot(handle)) continue;
    std::string ns(kube::str_at(cv, {"spec", "volumeSnapshotRef", "namespace"}));
    json::object o{{"volumeSnapshotContent", kube::name_of(cv)},
                   {"namespace", ns},
                   {"volumeSnapshot", kube::str_at(cv, {"spec", "volumeSnapshotRef", "name"})},
                   {"snapshotHandle", handle},
                   {"size", bytes_->snapshot_size(handle)}};
    std::string vs(kube::str_at(cv, {"spec", "volumeSnapshotRef", "name"}));
    if (auto gc = guest_cuts_.find(ns + "/" + vs); gc != guest_cuts_.end() && gc->second.state == "Checked") {
      o["fsClean"] = gc->second.fs_clean;
      o["needsRecovery"] = gc->second.needs_recovery;
    }
    if (selected(ns, "", vs) && hash.pvc.empty()) {
      auto h = bytes_->snapshot_sha256(handle);
      o["sha256"] = h ? *h : "error: " + h.error().message;
    }
    snaps.push_back(std::move(o));
  }
  return json::object{{"volumes", arr}, {"snapshots", snaps}};
}

}  // namespace kvb::testcluster
