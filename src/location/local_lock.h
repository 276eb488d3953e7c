// The locks of a local location: the run lock of a backup or restore
// (lock_file) and the lock (a repository's: shared for put, get, list
// and check, exclusive for forget and prune; docs/repository.md, "Locks").
//
// flock(2) on the directory itself, so deleting or replacing a file in it
// (the old <repo>/lock) cannot break it, and the kernel drops it when its
// holder dies, even by kill -9: there are no stale locks to break. Where a
// directory cannot be locked (NFS emulates flock with POSIX locks, which need
// a file open for writing), <dir>/lock is locked instead, and its inode is
// checked after locking (a lock on a file someone deleted or replaced is
// retried).
//
// Invariants: while an exclusive lock is held no other lock on the same
// directory is held, shared or exclusive; acquiring never waits longer than
// asked (then Errc::kConflict naming the directory); still_held() fails once
// what was locked is no longer at its path.
#pragma once

#include "location/location.h"

namespace kvb::location {

// A run lock (Location::lock_path): flock(2) on `path` (created 0600, never
// through a symbolic link), tried once; the file is removed when the lock is
// released. kConflict while a live process holds it.
Result<std::unique_ptr<Lock>> lock_file(const std::filesystem::path& path);

Result<std::unique_ptr<Lock>> lock_directory(const std::filesystem::path& dir, LockMode mode, std::chrono::milliseconds wait);

}  // namespace kvb::location
