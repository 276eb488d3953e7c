// Location: where backups live. A tree of small files addressed by relative
// paths ("backups/nightly/backup.json"), each written atomically.
//
// Invariant: a file is either absent or complete; readers never see a torn
// write. A file written with put() is durable when put() returns; one written
// with put_deferred() once sync() returns. Paths are validated: no "..", no absolute paths.
// Everything a location holds is private: a local location's files are mode
// 0600 and its directories 0700, whatever the umask (records hold cloud-init
// user data and Secrets).
#pragma once

#include "common/error.h"

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kvb::location {

class Location {
 public:
  virtual ~Location() = default;
  virtual std::string describe() const = 0;
  // `secret` is kept for callers that mark secrets; every file is private anyway.
  virtual Status put(const std::string& path, std::string_view data, bool secret = false) = 0;
  // Like put (atomic), but durable only after the next sync(): for the many
  // small files a record refers to, which sync() makes durable at once before
  // the record itself is put.
  virtual Status put_deferred(const std::string& path, std::string_view data, bool secret = false) = 0;
  virtual Status sync() = 0;
  virtual Result<std::string> get(const std::string& path) const = 0;
  virtual bool exists(const std::string& path) const = 0;
  // Immediate children of a directory path (names only, sorted).
  virtual Result<std::vector<std::string>> list(const std::string& dir) const = 0;
  // Removes a file or a whole directory tree.
  virtual Status remove(const std::string& path) = 0;
  // The directory behind a local location (for advisory locks), else nullopt.
  virtual std::optional<std::filesystem::path> local_root() const = 0;
};

// kCreate: commands that write (backup create) create a missing location.
// kExisting: commands that only read or change what is there (list,
// describe, delete, recover, restore) fail when it does not exist, naming it,
// so that a typo is an error instead of an empty list.
enum class OpenMode { kCreate, kExisting };

// Opens a local directory location; kCreate creates it (0700) if needed and
// proves it is writable by writing and removing a probe file.
Result<std::unique_ptr<Location>> open_local(const std::filesystem::path& dir, OpenMode mode = OpenMode::kCreate);

// The default location: $KVBACKUP_LOCATION, else ./kvbackup-backups.
std::filesystem::path default_location_dir();

Status validate_relative_path(const std::string& path);

}  // namespace kvb::location
