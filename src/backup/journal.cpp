#include "backup/journal.h"

#include "record/naming.h"

#include <boost/json.hpp>

namespace kvb::backup {
namespace json = boost::json;

Result<std::unique_ptr<location::Lock>> lock_journal(location::Location& loc, const std::string& backup,
                                                     std::chrono::milliseconds wait) {
  auto lock = loc.lock_path("journal/" + record::journal_lock_name(backup), wait);
  if (!lock && lock.error().code == Errc::kConflict) {
    return Error(Errc::kConflict, "backup " + backup + " is running (its journal entry in " + loc.describe() +
                                      " is held by a live kvbackup: " + lock.error().message + ")");
  }
  if (!lock) return lock.error().with_context("taking the run lock of backup " + backup + " in " + loc.describe());
  return lock;
}

bool backup_running(location::Location& loc, const std::string& backup) {
  auto lock = lock_journal(loc, backup);
  return !lock && lock.error().code == Errc::kConflict;
}

Status remove_journal_entry(location::Location& loc, const std::string& backup) {
  return loc.remove(record::journal_entry_path(backup));
}

Result<std::unique_ptr<Journal>> Journal::begin(location::Location& loc, std::unique_ptr<location::Lock> lock,
                                                const record::JournalEntry& entry) {
  std::string path = record::journal_entry_path(entry.backup);
  auto st = loc.create(path, json::serialize(entry.to_json()));
  if (!st && st.error().code == Errc::kAlreadyExists) {
    return Error(Errc::kAlreadyExists, "backup " + entry.backup + ": the journal entry " + loc.describe() + "/" + path +
                                           " of an earlier run is still there (its VMs were not confirmed thawed); run kvbackup "
                                           "recover --location " + loc.describe() + " first");
  }
  if (!st) return st.error().with_context("writing the freeze journal " + loc.describe() + "/" + path + " (nothing was frozen)");
  return std::unique_ptr<Journal>(new Journal(loc, entry.backup, std::move(lock)));
}

Status Journal::finish() {
  if (!lock_) return ok();
  auto st = remove_journal_entry(loc_, backup_);
  lock_.reset();
  return st;
}

}  // namespace kvb::backup
