// How saved objects become the objects of a restore. Pure functions over
// JSON; no I/O, so every rewrite is unit-tested on its own.
//
// Invariants: a restored VM references only restored claims (no
// dataVolumeTemplates, every disk volume a persistentVolumeClaim); it carries
// no server-set metadata and no owner references; a copy beside a still
// existing original has no MAC addresses and no firmware UUID.
#pragma once

#include <boost/json/object.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace kvb::restore {

inline constexpr const char* kRestoreLabel = "kvbackup.io/restore";
inline constexpr const char* kRestoredFromAnnotation = "kvbackup.io/restored-from";

// Bytes of a Kubernetes quantity ("10Gi", "500M", "1073741824"); nullopt when malformed.
std::optional<int64_t> quantity_bytes(const std::string& q);
// The larger of two quantities (the requested size, the snapshot's restoreSize).
std::string larger_quantity(const std::string& a, const std::string& b);

struct ClaimSpec {
  std::string ns, name;
  std::string snapshot;       // VolumeSnapshot in ns: the claim's dataSource
  std::string storage_class;
  std::string size;
  std::string restore;        // restore name (label)
};
// A claim restored from a snapshot; access modes and volume mode come from the
// saved claim (or DataVolume storage spec), defaults otherwise.
boost::json::object restored_claim(const boost::json::object& saved_pvc, const ClaimSpec& c);

struct VmRewrite {
  std::string ns, name;
  std::map<std::string, std::string> claim_for_volume;  // volume name -> restored claim
  std::string run_strategy = "keep";                    // keep | Halted | Always
  bool strip_identity = false;                          // drop MAC addresses and firmware UUID
  bool isolate = false;                                 // no network interfaces: none, no networks, no pod interface
  std::string restore, restored_from;                   // label and annotation values
};
boost::json::object restored_vm(const boost::json::object& saved_vm, const VmRewrite& w);
// The run strategy a VM spec asks for (spec.runStrategy, else spec.running).
std::string run_strategy_of(const boost::json::object& vm);

// A saved Secret or ConfigMap for another namespace.
boost::json::object restored_config(const boost::json::object& saved, const std::string& ns);
// Same content (type, data, stringData, binaryData)?
bool same_config(const boost::json::object& a, const boost::json::object& b);

// A pre-provisioned VolumeSnapshotContent for a storage snapshot, and the
// VolumeSnapshot bound to it: how a snapshot is brought into another namespace.
boost::json::object imported_content(const std::string& name, const std::string& driver, const std::string& snapshot_class,
                                     const std::string& handle, const std::string& ns, const std::string& snapshot,
                                     const std::string& restore);
boost::json::object imported_snapshot(const std::string& ns, const std::string& name, const std::string& content,
                                      const std::string& snapshot_class, const std::string& restore);

}  // namespace kvb::restore
