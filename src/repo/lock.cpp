#include "repo/lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace kvb::repo {

Result<RepositoryLock> RepositoryLock::acquire(const std::filesystem::path& repo, LockMode mode, std::chrono::milliseconds wait) {
  auto path = repo / "lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Error(Errc::kIo, "cannot open " + path.string() + ": " + std::strerror(errno));
  int op = (mode == LockMode::kExclusive ? LOCK_EX : LOCK_SH) | LOCK_NB;
  auto deadline = std::chrono::steady_clock::now() + wait;
  auto pause = std::chrono::milliseconds(10);
  while (::flock(fd, op) != 0) {
    int err = errno;
    if (err == EINTR) continue;
    if (err != EWOULDBLOCK || std::chrono::steady_clock::now() >= deadline) {
      ::close(fd);
      if (err != EWOULDBLOCK) return Error(Errc::kIo, "cannot lock " + path.string() + ": " + std::strerror(err));
      return Error(Errc::kConflict,
                   "repository " + repo.string() + " is in use: " +
                       (mode == LockMode::kExclusive ? "forget and prune need it to themselves, and another kvbackup holds it"
                                                     : "a forget or prune holds it") +
                       " (try again when that finishes)");
    }
    // Polling, not synchronisation: flock has no timed wait.
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(200));
  }
  return RepositoryLock(fd);
}

RepositoryLock& RepositoryLock::operator=(RepositoryLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

RepositoryLock::~RepositoryLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the descriptor releases the flock
}

}  // namespace kvb::repo
