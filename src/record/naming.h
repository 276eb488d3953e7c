// Names kvbackup gives things, in one place: files in a location, labels and
// annotations on the cluster objects it creates, and the names of those
// objects. Object names are valid Kubernetes names whatever the inputs
// (shortened with a hash when too long).
#pragma once

#include "common/error.h"

#include <string>

namespace kvb::record {

// Labels on every VolumeSnapshot (and temporary object) a backup creates.
inline constexpr const char* kBackupLabel = "kvbackup.io/backup";         // the backup's name
inline constexpr const char* kBackupUidLabel = "kvbackup.io/backup-uid";  // the run's uid: names are reused, uids never
inline constexpr const char* kVmLabel = "kvbackup.io/vm";                 // the VM's name (cut to 63 characters)
inline constexpr const char* kVmAnnotation = "kvbackup.io/vm";
inline constexpr const char* kVolumeAnnotation = "kvbackup.io/volume";
inline constexpr const char* kRoleLabel = "kvbackup.io/role";            // "data-copy" on the temporary claims and exports of --copy-data
inline constexpr const char* kDataCopyRole = "data-copy";

// Backup and restore names become parts of object names and labels: DNS-1123 labels.
Status validate_backup_name(const std::string& name);

std::string backup_dir(const std::string& backup);           // "backups/<name>"
std::string backup_record_path(const std::string& backup);   // "backups/<name>/backup.json"
// "backups/<backup>/resources/<ns or _cluster>/<resource>/<name>.json"
std::string resource_path(const std::string& backup, const std::string& ns, const std::string& resource,
                          const std::string& name);
std::string journal_entry_path(const std::string& backup);   // "journal/<name>.json"
std::string journal_lock_name(const std::string& backup);    // "<name>.lock" in journal/

// "<backup>-<vm>-<volume>" made a valid object name; with `suffix` (a run's
// short id) appended when the plain name is taken by another run's object.
std::string snapshot_name(const std::string& backup, const std::string& vm, const std::string& volume,
                          const std::string& suffix = {});
// The coordination.k8s.io Lease that serialises freezes of one VM across kvbackup processes.
std::string freeze_lease_name(const std::string& vm);
// A label value from any text: at most 63 characters, alphanumeric at both ends.
std::string label_value(const std::string& text);

}  // namespace kvb::record
