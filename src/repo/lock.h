// RepositoryLock: who may use a repository at the same time
// (docs/repository.md, "Locks").
//
// put, get, list and check take a shared lock; forget and prune take an
// exclusive one. Two writers can share a repository because everything a
// put writes has a fresh name; prune cannot share it with anyone, because it
// deletes what it believes unused. The lock is flock(2) on the repository
// directory itself, so deleting or replacing a file in it (the old
// <repo>/lock) cannot break it, and the kernel drops it when its holder dies,
// even by kill -9: there are no stale locks to break. Where a directory
// cannot be locked (NFS emulates flock with POSIX locks, which need a file
// open for writing), <repo>/lock is locked instead, and its inode is checked
// after locking (a lock on a file someone deleted or replaced is retried).
//
// Invariants: while an exclusive lock is held no other RepositoryLock on the
// same repository is held, shared or exclusive; acquire() never waits
// forever (it fails with a message naming the repository); still_held()
// fails once what was locked is no longer the repository's (the directory or
// the lock file was replaced).
#pragma once

#include "common/error.h"

#include <chrono>
#include <filesystem>

#include <sys/types.h>

namespace kvb::repo {

enum class LockMode { kShared, kExclusive };

class RepositoryLock {
 public:
  // Waits up to `wait` for the lock (zero: try once).
  static Result<RepositoryLock> acquire(const std::filesystem::path& repo, LockMode mode,
                                        std::chrono::milliseconds wait = std::chrono::milliseconds(0));
  RepositoryLock(RepositoryLock&& other) noexcept;
  RepositoryLock& operator=(RepositoryLock&& other) noexcept;
  RepositoryLock(const RepositoryLock&) = delete;
  RepositoryLock& operator=(const RepositoryLock&) = delete;
  ~RepositoryLock();

  // Ok while the locked directory (or lock file) is still the one at its path.
  Status still_held() const;

 private:
  RepositoryLock(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::filesystem::path path_;  // what is locked: the repository directory, or its lock file
};

}  // namespace kvb::repo
