// --consistency-group all: one instant for many VMs. Every VM is frozen
// first, then every snapshot of every VM is created and cut, every frozen VM
// is checked still frozen, then every VM is thawed. Each VM is judged against
// the cuts of the whole group (backup/verdict.h), so a VM is
// FileSystemConsistent only if every cut of the group fell inside its freeze.
// If one VM cannot be frozen, no snapshot is taken: every VM is thawed and
// fails with that reason. The steps are VmBackup's.
#pragma once

#include "backup/context.h"
#include "backup/plan.h"
#include "record/backup_record.h"

#include <stop_token>
#include <vector>

namespace kvb::backup {

std::vector<record::VmRecord> backup_group(BackupContext& ctx, const Plan& plan, std::stop_token stop);

}  // namespace kvb::backup
