// Location: where backups and repositories live. A tree of files addressed
// by relative paths ("backups/nightly/backup.json", "data/ab/ab12..."), each
// written atomically: a local directory (local_location.cpp) or an S3 bucket
// under a prefix (s3/s3_location.h). Backup, restore and repository code talk
// to this interface only and do not know which they have.
//
// Invariant: a file is either absent or complete; readers never see a torn
// write. A file written with put() is durable when put() returns; one written
// with put_deferred() once sync() returns. Paths are validated: no "..", no absolute paths.
// Everything a location holds is private: a local location's files are mode
// 0600 and its directories 0700, whatever the umask (records hold cloud-init
// user data and Secrets).
//
// Threads: every method of a Location may be called from many threads at once
// (backups write records and resources from parallel VM workers; the
// repository uploads packs several at a time); implementations lock what they
// share. A Lock object belongs to the thread that took it.
//
// Two kinds of lock: lock() is the location's own (a repository's, shared or
// exclusive); lock_path() is an exclusive lock on one name in it, held by a
// running backup or restore for as long as its process lives, so that
// another process tells a live run from a dead one (docs/location.md, "Run
// locks"). Both are released when the Lock object is destroyed.
#pragma once

#include "common/error.h"

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kvb::location {

enum class LockMode { kShared, kExclusive };

// How long a starting run (backup create, restore create) retries when its
// run lock is contended: two runs of one name started in the same instant on
// an object store both back off, and the jittered retries let one of them
// win (a local flock decides at once).
inline constexpr std::chrono::milliseconds kRunLockContention{5'000};

// A lock on a whole location (a repository's: shared for put/get/check,
// exclusive for prune). Released when destroyed.
class Lock {
 public:
  virtual ~Lock() = default;
  // Ok while the lock is still this holder's: not broken, replaced or expired.
  virtual Status still_held() const = 0;
};

struct FileInfo {
  std::string path;  // relative to the location
  uint64_t size = 0;
  std::chrono::system_clock::time_point mtime{};  // when it was written
  bool temporary = false;  // what an interrupted write left behind (a local "*.tmp-*" file)
};

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
  // Writes `path` only if nothing is there (whole or nothing, durable on
  // return): kAlreadyExists when it exists. Local: link(2) of a complete,
  // fsynced temporary file; S3: PutObject with If-None-Match: * (a server
  // that refuses the header with 501: HEAD, PUT, read back). (The default:
  // exists() then put(), for wrappers in tests.)
  virtual Status create(const std::string& path, std::string_view data);
  virtual Result<std::string> get(const std::string& path) const = 0;
  // `length` bytes of a file from `offset`; a file that ends before is an error.
  // (The default reads the whole file; both real locations read just the range.)
  virtual Result<std::string> read_range(const std::string& path, uint64_t offset, uint64_t length) const;
  // A hint that read_range(path, offset, length) comes soon: a local location
  // asks the kernel to read it ahead (posix_fadvise WILLNEED), so a cold
  // repository is read with more requests in flight than there are readers
  // and no memory of ours. May do nothing; never fails.
  virtual void prefetch(const std::string& /*path*/, uint64_t /*offset*/, uint64_t /*length*/) const {}
  virtual bool exists(const std::string& path) const = 0;
  // Immediate children of a directory path (names only, sorted).
  virtual Result<std::vector<std::string>> list(const std::string& dir) const = 0;
  // Every file under a directory path, recursively, sorted by path (none: an empty list).
  virtual Result<std::vector<FileInfo>> walk(const std::string& dir) const;
  // Removes a file or a whole directory tree.
  virtual Status remove(const std::string& path) = 0;
  // Removes files (durably); files already gone are fine.
  virtual Status remove_files(const std::vector<std::string>& paths);
  // Waits up to `wait` for the location's lock (zero: try once); a lock held
  // elsewhere is Errc::kConflict naming the holder when known. (The default:
  // a location that cannot be locked, for wrappers in tests.)
  virtual Result<std::unique_ptr<Lock>> lock(LockMode mode, std::chrono::milliseconds wait);
  // The run lock named by `path` (a backup's "journal/<name>.lock"): exclusive;
  // kConflict naming the holder while a live process holds it. `wait` bounds
  // how long contention is retried: a local flock decides at once; on an
  // object store two runs that start at the same moment both see each other
  // and back off, and the retries (with jitter) let one of them win. A holder
  // that died is detected (local: the kernel dropped its flock; S3: its lock
  // object names a process of this host that no longer runs, or it expired).
  // (The default: a location that cannot be locked, for wrappers in tests.)
  virtual Result<std::unique_ptr<Lock>> lock_path(const std::string& path, std::chrono::milliseconds wait);
  // How many writes are worth running at once (1 for a disk, several for an object store).
  virtual unsigned parallelism() const { return 1; }
  // The directory behind a local location, else nullopt (only for creating a
  // local location's private directories; locks go through lock_path()).
  virtual std::optional<std::filesystem::path> local_root() const = 0;
};

// kCreate: commands that write (backup create, repo init) create a missing
// location. kExisting: commands that only read or change what is there
// (list, describe, delete, recover, restore, repo put/get/...) fail when it
// does not exist, naming it, so that a typo is an error instead of an empty
// list.
enum class OpenMode { kCreate, kExisting };

// A location named by the user: "s3://BUCKET/PREFIX[?options]" (docs/location.md)
// or a local directory. A string that looks like a URL of any other scheme
// ("gs://", "azure://", "s3:/typo", "file:x") is an error, never a directory.
Result<std::unique_ptr<Location>> open(const std::string& url_or_dir, OpenMode mode);

// Opens a local directory location; kCreate creates it (0700) if needed and
// proves it is writable by writing and removing a probe file.
Result<std::unique_ptr<Location>> open_local(const std::filesystem::path& dir, OpenMode mode = OpenMode::kCreate);

// A location inside another: "<dir>/<child>" for a directory,
// "s3://BUCKET/PREFIX/<child>?options" for S3 (the repository of a backup
// location is child_location(location, "repository")).
std::string child_location(const std::string& url_or_dir, const std::string& child);

// The default location: $KVBACKUP_LOCATION, else ./kvbackup-backups.
std::string default_location();

Status validate_relative_path(const std::string& path);

}  // namespace kvb::location
