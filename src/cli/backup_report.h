// How a backup record reads on a terminal: the per-VM table that ends
// `backup create`, `backup list` rows and `backup describe`. Everything
// printed goes through printable(): a record is a file anyone with access to
// the location may have edited.
#pragma once

#include "record/backup_record.h"

#include <string>

namespace kvb::cli {

// One line per VM: consistency, freeze window, volumes, problems.
std::string vm_table(const record::BackupRecord& rec);
// Everything the record says; only the VM `vm` (NAME or NAMESPACE/NAME) when given.
std::string describe_backup(const record::BackupRecord& rec, const std::string& vm);
// A VM ended as promised: the phase it was planned for, at the consistency
// promised or better (a freeze proven where the rules did not promise one).
bool ended_as_promised(const record::VmRecord& vm);
bool every_vm_as_promised(const record::BackupRecord& rec);

}  // namespace kvb::cli
