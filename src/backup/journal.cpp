#include "backup/journal.h"

#include "common/file_lock.h"
#include "record/naming.h"

#include <boost/json.hpp>

#include <unistd.h>

namespace kvb::backup {
namespace json = boost::json;

Result<int> lock_journal(location::Location& loc, const std::string& backup) {
  auto root = loc.local_root();
  if (!root) return Error(Errc::kInvalidArgument, "the freeze journal needs a local backup location (" + loc.describe() + ")");
  auto fd = try_lock_file(*root / "journal" / record::journal_lock_name(backup));
  if (!fd && fd.error().code == Errc::kConflict) {
    return Error(Errc::kConflict, "backup " + backup + " is running (its journal entry is held by a live kvbackup)");
  }
  return fd;
}

bool backup_running(location::Location& loc, const std::string& backup) {
  auto fd = lock_journal(loc, backup);
  if (!fd) return fd.error().code == Errc::kConflict;
  ::close(*fd);
  return false;
}

Status remove_journal_entry(location::Location& loc, const std::string& backup) {
  auto st = loc.remove(record::journal_entry_path(backup));
  if (auto root = loc.local_root()) {
    std::error_code ec;
    std::filesystem::remove(*root / "journal" / record::journal_lock_name(backup), ec);
  }
  return st;
}

Result<std::unique_ptr<Journal>> Journal::begin(location::Location& loc, const record::JournalEntry& entry) {
  KVB_TRY(int fd, lock_journal(loc, entry.backup));
  auto st = loc.put(record::journal_entry_path(entry.backup), json::serialize(entry.to_json()));
  if (!st) {
    ::close(fd);
    return st.error().with_context("writing the freeze journal");
  }
  return std::unique_ptr<Journal>(new Journal(loc, entry.backup, fd));
}

Journal::~Journal() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

Status Journal::finish() {
  if (finished_) return ok();
  finished_ = true;
  auto st = remove_journal_entry(loc_, backup_);
  ::close(lock_fd_);
  lock_fd_ = -1;
  return st;
}

}  // namespace kvb::backup
