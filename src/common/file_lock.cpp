#include "common/file_lock.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kvb {

Result<int> try_lock_file(const std::filesystem::path& path) {
  auto dir = path.parent_path();
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Error(Errc::kIo, "cannot create " + dir.string() + ": " + std::strerror(errno));
  }
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Error(Errc::kIo, "cannot open lock " + path.string() + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return Error(Errc::kConflict, path.string() + " is held by a live process");
  }
  return fd;
}

}  // namespace kvb
