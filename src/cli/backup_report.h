// How a backup record reads on a terminal: the per-VM table that ends
// `backup create`, `backup list` rows and `backup describe`.
#pragma once

#include "backup/record.h"

#include <string>

namespace kvb::cli {

// One line per VM: consistency, freeze window, volumes, problems.
std::string vm_table(const backup::BackupRecord& rec);
// Everything the record says; only the VM `vm` (NAME or NAMESPACE/NAME) when given.
std::string describe_backup(const backup::BackupRecord& rec, const std::string& vm);
// A VM ended as promised: the phase it was planned for, at the consistency promised.
bool ended_as_promised(const backup::VmRecord& vm);
bool every_vm_as_promised(const backup::BackupRecord& rec);

}  // namespace kvb::cli
