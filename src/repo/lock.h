// RepositoryLock: who may use a repository at the same time
// (docs/repository.md, "Locks").
//
// put, get, list and check take a shared lock; forget and prune take an
// exclusive one. Two writers can share a repository because everything a
// put writes has a fresh name; prune cannot share it with anyone, because it
// deletes what it believes unused. The lock is flock(2) on <repo>/lock, so
// the kernel drops it when its holder dies, even by kill -9: there are no
// stale locks to break.
//
// Invariants: while an exclusive lock is held no other RepositoryLock on the
// same repository is held, shared or exclusive; acquire() never waits
// forever (it fails with a message naming the repository).
#pragma once

#include "common/error.h"

#include <chrono>
#include <filesystem>

namespace kvb::repo {

enum class LockMode { kShared, kExclusive };

class RepositoryLock {
 public:
  // Waits up to `wait` for the lock (zero: try once).
  static Result<RepositoryLock> acquire(const std::filesystem::path& repo, LockMode mode,
                                        std::chrono::milliseconds wait = std::chrono::milliseconds(0));
  RepositoryLock(RepositoryLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  RepositoryLock& operator=(RepositoryLock&& other) noexcept;
  RepositoryLock(const RepositoryLock&) = delete;
  RepositoryLock& operator=(const RepositoryLock&) = delete;
  ~RepositoryLock();

 private:
  explicit RepositoryLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace kvb::repo
