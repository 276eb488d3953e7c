#include "common/bounded_read.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kvb {

Result<std::string> read_file_bounded(const std::filesystem::path& path, std::string_view what, size_t limit) {
  const std::string who = std::string(what) + " " + path.string();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return Error(err == ENOENT ? Errc::kNotFound : Errc::kIo, "cannot read " + who + ": " + std::strerror(err));
  }
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return Error(err == EISDIR ? Errc::kInvalidArgument : Errc::kIo, "cannot read " + who + ": " + std::strerror(err));
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > limit) {
      ::close(fd);
      std::string size = limit >= (1 << 20) && limit % (1 << 20) == 0 ? std::to_string(limit >> 20) + " MiB" : std::to_string(limit) + " bytes";
      return Error(Errc::kInvalidArgument, who + " is larger than " + size + ", the limit for a " +
                                               std::string(what) + " (is it the right file?)");
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace kvb
