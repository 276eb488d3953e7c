// The plan of a restore, made before anything changes: which VMs of the
// backup come back, under which names and namespaces, from which snapshots,
// into which claims, and what is in the way. Every error a restore can know
// in advance is found here (backup not restorable, VM not in it, snapshot
// gone or not ready, namespace or storage class missing, name collisions,
// conflicting Secrets); nothing in the cluster is touched until it passes.
#pragma once

#include "record/backup_record.h"
#include "kube/client.h"
#include "location/location.h"
#include "restore/record.h"
#include "restore/spec.h"

#include <memory>

#include <boost/json/object.hpp>

#include <optional>
#include <string>
#include <vector>

namespace kvb::restore {

struct VolumeToRestore {
  record::VolumeRecord source;
  boost::json::object saved_pvc;  // may be empty (then defaults)
  std::string claim;              // the restored claim's name
  std::string snapshot;           // VolumeSnapshot in the target namespace the claim is restored from
  bool import = false;            // another namespace: pre-provisioned content + snapshot are created
  std::string content;            // the pre-provisioned content's name (import)
  std::string handle, driver;     // the storage snapshot (import)
  std::string storage_class;
  bool wait_for_first_consumer = false;  // the claim binds only once the VM runs
  std::string size;
  // The bytes come from the repository copy (--copy-data) through a CDI
  // upload DataVolume named `claim`, not from `snapshot`.
  bool from_repository = false;
  record::DataCopyRecord copy;
};

struct ConfigToRestore {
  const kube::ResourceRef* resource = nullptr;  // secrets or configmaps
  boost::json::object object;                   // ready to create in the target namespace
  bool exists_identical = false;                // skip
  bool exists_different = false;                // replace (only with --existing replace)
};

struct VmToRestore {
  record::VmRecord source;
  boost::json::object saved_vm;
  std::string ns, name;
  std::vector<VolumeToRestore> volumes;
  std::vector<ConfigToRestore> configs;
  std::optional<boost::json::object> existing;  // the VM being replaced
  bool copy = false;                            // beside a still existing original
  std::string run_strategy;                     // the one the restored VM gets
};

struct RestorePlan {
  record::BackupRecord backup;
  std::vector<VmToRestore> vms;
  std::vector<std::string> create_namespaces;
  std::vector<std::string> notes;  // e.g. failed VMs of the backup left out
  bool uses_repository() const;
};

// Where the plan reads what it decides from: the backup location (the record
// and the saved objects) and the target cluster (what exists there). The
// decisions read nothing else, so tests give them an in-memory world
// (tests/restore/plan_test.cpp).
class PlanSources {
 public:
  virtual ~PlanSources() = default;
  virtual Result<record::BackupRecord> backup(const std::string& name) = 0;
  virtual bool restore_exists(const std::string& name) = 0;
  // A file of the backup ("resources/..."), as JSON.
  virtual Result<boost::json::object> saved(const std::string& backup, const std::string& path) = 0;
  // The live object, nullopt when it does not exist.
  virtual Result<std::optional<boost::json::object>> live(const kube::ResourceRef& ref, const std::string& ns,
                                                          const std::string& name) = 0;
};
std::unique_ptr<PlanSources> cluster_sources(kube::Client& client, location::Location& loc);

// The decisions. Objects labelled by this very restore (kvbackup.io/restore =
// spec.name) are its own: they are never in the way, so an interrupted
// restore can be planned again and completed.
Result<RestorePlan> plan_restore(const RestoreSpec& spec, PlanSources& sources);

Result<RestorePlan> make_restore_plan(kube::Client& client, location::Location& loc, const RestoreSpec& spec);


}  // namespace kvb::restore
