// The objects a restore needs, saved beside the record:
// resources/<namespace>/<resource>/<name>.json (cluster-scoped under _cluster/).
// For each VM: the VM (status and server-set metadata dropped), its
// DataVolumes and claims, the Secrets and ConfigMaps its volumes and access
// credentials reference (cloud-init user and network data, SSH keys), its
// instance type and preference, and the VolumeSnapshot and
// VolumeSnapshotContent objects of the backup. Secret files are written 0600;
// their content never goes into the record or a log. Every file of a location
// is private (0600) anyway: VM specs hold cloud-init user data, which may
// carry passwords.
#pragma once

#include "backup/plan.h"
#include "record/backup_record.h"
#include "kube/client.h"
#include "location/location.h"

#include <boost/json/object.hpp>

#include <functional>
#include <optional>

namespace kvb::backup {

// Drops status and server-set metadata (uid, resourceVersion, creationTimestamp, managedFields, generation).
boost::json::object clean_object(boost::json::object obj);

// Objects the backup already holds (watch caches, one list per namespace, reads
// already made): nullopt sends collect_resources to the API server; a held
// error is not asked again.
using ObjectLookup = std::function<std::optional<Result<boost::json::object>>(
    const kube::ResourceRef& resource, const std::string& ns, const std::string& name)>;

// Saves one VM's objects; records the files in vm_record.resources and each
// volume's VolumeSnapshotContent name and restoreSize (its cut time is the VM
// backup's to set: backup/vm_backup.cpp).
Status collect_resources(kube::Client& client, location::Location& loc, const std::string& backup, const VmPlan& plan,
                         record::VmRecord& vm_record, const ObjectLookup& cached = {});

}  // namespace kvb::backup
