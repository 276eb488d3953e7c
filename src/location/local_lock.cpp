#include "location/local_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace kvb::location {
namespace {

bool same_inode(int fd, const std::filesystem::path& path) {
  struct stat a {}, b {};
  return ::fstat(fd, &a) == 0 && ::stat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

class DirectoryLock : public Lock {
 public:
  DirectoryLock(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  ~DirectoryLock() override { ::close(fd_); }  // closing the descriptor releases the flock
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

  Status still_held() const override {
    if (same_inode(fd_, path_)) return ok();
    return Error(Errc::kConflict, "the lock on " + path_.string() + " was lost: it was deleted or replaced while kvbackup held it");
  }

 private:
  int fd_;
  std::filesystem::path path_;
};

// A run lock: flock on a file (journal/<name>.lock), removed on release while
// still held, so that no lock file outlives its run; a locker that finds its
// file deleted or replaced after locking it locks the new one instead.
class FileLock : public Lock {
 public:
  FileLock(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  ~FileLock() override {
    if (same_inode(fd_, path_)) ::unlink(path_.c_str());
    ::close(fd_);
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

  Status still_held() const override {
    if (same_inode(fd_, path_)) return ok();
    return Error(Errc::kConflict, "the lock " + path_.string() + " was lost: it was deleted or replaced while kvbackup held it");
  }

 private:
  int fd_;
  std::filesystem::path path_;
};

}  // namespace

Result<std::unique_ptr<Lock>> lock_file(const std::filesystem::path& path) {
  auto dir = path.parent_path();
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Error(Errc::kIo, "cannot create " + dir.string() + ": " + std::strerror(errno));
  }
  for (int attempt = 0; attempt < 100; ++attempt) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return Error(Errc::kIo, "cannot open lock " + path.string() + ": " + std::strerror(errno));
    int rc;
    do {
      rc = ::flock(fd, LOCK_EX | LOCK_NB);
    } while (rc != 0 && errno == EINTR);
    int err = rc == 0 ? 0 : errno;
    if (rc == 0 && same_inode(fd, path)) return std::unique_ptr<Lock>(new FileLock(fd, path));
    ::close(fd);
    if (rc == 0) continue;  // its holder removed it as we locked it: lock the new file
    if (err == EWOULDBLOCK) return Error(Errc::kConflict, path.string() + " is held by a live process");
    return Error(Errc::kIo, "cannot lock " + path.string() + ": " + std::strerror(err));
  }
  return Error(Errc::kConflict, path.string() + " keeps being replaced while we lock it");
}

Result<std::unique_ptr<Lock>> lock_directory(const std::filesystem::path& dir, LockMode mode, std::chrono::milliseconds wait) {
  const int op = (mode == LockMode::kExclusive ? LOCK_EX : LOCK_SH) | LOCK_NB;
  const auto deadline = std::chrono::steady_clock::now() + wait;
  auto pause = std::chrono::milliseconds(10);
  bool use_file = false;
  for (;;) {
    std::filesystem::path path = use_file ? dir / "lock" : dir;
    int fd = use_file ? ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600) : ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Error(Errc::kIo, "cannot open " + path.string() + " to lock it: " + std::strerror(errno));
    int rc;
    do {
      rc = ::flock(fd, op);
    } while (rc != 0 && errno == EINTR);
    int err = rc == 0 ? 0 : errno;
    if (rc == 0 && same_inode(fd, path)) return std::unique_ptr<Lock>(new DirectoryLock(fd, path));
    ::close(fd);
    if (rc == 0) continue;  // locked a lock file someone deleted or replaced meanwhile: lock the new one
    if (err != EWOULDBLOCK) {
      if (!use_file && (err == EBADF || err == ENOLCK || err == EINVAL || err == EOPNOTSUPP)) {
        use_file = true;  // a file system that cannot lock directories
        continue;
      }
      return Error(Errc::kIo, "cannot lock " + path.string() + ": " + std::strerror(err));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return Error(Errc::kConflict, dir.string() + " is locked by another kvbackup");
    }
    // Polling, not synchronisation: flock has no timed wait.
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(200));
  }
}

}  // namespace kvb::location
