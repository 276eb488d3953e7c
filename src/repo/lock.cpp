#include "repo/lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace kvb::repo {
namespace {

bool same_inode(int fd, const std::filesystem::path& path) {
  struct stat a {}, b {};
  return ::fstat(fd, &a) == 0 && ::stat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

Error busy(const std::filesystem::path& repo, LockMode mode) {
  return Error(Errc::kConflict, "repository " + repo.string() + " is in use: " +
                                    (mode == LockMode::kExclusive ? "forget and prune need it to themselves, and another kvbackup holds it"
                                                                  : "a forget or prune holds it") +
                                    " (try again when that finishes)");
}

}  // namespace

Result<RepositoryLock> RepositoryLock::acquire(const std::filesystem::path& repo, LockMode mode, std::chrono::milliseconds wait) {
  const int op = (mode == LockMode::kExclusive ? LOCK_EX : LOCK_SH) | LOCK_NB;
  const auto deadline = std::chrono::steady_clock::now() + wait;
  auto pause = std::chrono::milliseconds(10);
  bool use_file = false;
  for (;;) {
    std::filesystem::path path = use_file ? repo / "lock" : repo;
    int fd = use_file ? ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600) : ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Error(Errc::kIo, "cannot open " + path.string() + " to lock it: " + std::strerror(errno));
    int rc;
    do {
      rc = ::flock(fd, op);
    } while (rc != 0 && errno == EINTR);
    int err = rc == 0 ? 0 : errno;
    if (rc == 0 && same_inode(fd, path)) return RepositoryLock(fd, path);
    ::close(fd);
    if (rc == 0) continue;  // locked a lock file someone deleted or replaced meanwhile: lock the new one
    if (err != EWOULDBLOCK) {
      if (!use_file && (err == EBADF || err == ENOLCK || err == EINVAL || err == EOPNOTSUPP)) {
        use_file = true;  // a file system that cannot lock directories
        continue;
      }
      return Error(Errc::kIo, "cannot lock " + path.string() + ": " + std::strerror(err));
    }
    if (std::chrono::steady_clock::now() >= deadline) return busy(repo, mode);
    // Polling, not synchronisation: flock has no timed wait.
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(200));
  }
}

RepositoryLock::RepositoryLock(RepositoryLock&& other) noexcept : fd_(other.fd_), path_(std::move(other.path_)) { other.fd_ = -1; }

RepositoryLock& RepositoryLock::operator=(RepositoryLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    path_ = std::move(other.path_);
    other.fd_ = -1;
  }
  return *this;
}

RepositoryLock::~RepositoryLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the descriptor releases the flock
}

Status RepositoryLock::still_held() const {
  if (fd_ >= 0 && same_inode(fd_, path_)) return ok();
  return Error(Errc::kConflict, "the lock on " + path_.string() + " was lost: it was deleted or replaced while kvbackup held it");
}

}  // namespace kvb::repo
