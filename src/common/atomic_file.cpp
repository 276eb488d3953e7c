#include "common/atomic_file.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <sys/stat.h>
#include <unistd.h>

namespace kvb {
namespace {

Error io_error(const std::filesystem::path& path, std::string_view what, int err) {
  return Error(Errc::kIo, std::string(what) + " " + path.string() + ": " + std::strerror(err));
}

std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::to_string(rng() % 1'000'000'000);
}

}  // namespace

Status sync_directory(const std::filesystem::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error(dir, "cannot open directory", errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return io_error(dir, "cannot sync directory", err);
  return ok();
}

Status write_file_atomic(const std::filesystem::path& path, std::string_view data, unsigned mode, bool durable) {
  std::filesystem::path tmp = path;
  tmp += ".tmp-" + std::to_string(::getpid()) + "-" + random_suffix();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return io_error(tmp, "cannot create", errno);
  if (::fchmod(fd, mode) != 0) {  // the umask may have taken bits away (or the caller wants exactly this)
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return io_error(tmp, "cannot set the mode of", err);
  }
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return io_error(tmp, "cannot write", err);
    }
    off += static_cast<size_t>(n);
  }
  if (durable && ::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return io_error(tmp, "cannot sync", err);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return io_error(path, "cannot rename into place", err);
  }
  return durable ? sync_directory(path.parent_path()) : ok();
}

Status sync_filesystem(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error(path, "cannot open directory", errno);
  int rc = ::syncfs(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return io_error(path, "cannot sync the file system of", err);
  return ok();
}

Result<std::string> read_file(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    Error e = io_error(path, "cannot read", err);
    if (err == ENOENT) e.code = Errc::kNotFound;
    return e;
  }
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return io_error(path, "cannot read", err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

Status make_directories(const std::filesystem::path& path, unsigned mode) {
  if (path.empty()) return ok();
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return ok();
    return Error(Errc::kIo, "cannot create directory " + path.string() + ": a file of that name exists");
  }
  if (path.has_parent_path() && path.parent_path() != path) KVB_CHECK(make_directories(path.parent_path(), mode));
  if (::mkdir(path.c_str(), mode) != 0) {
    int err = errno;
    if (err == EEXIST && ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return ok();  // made by someone else meanwhile
    return io_error(path, "cannot create directory", err);
  }
  if (::chmod(path.c_str(), mode) != 0) return io_error(path, "cannot set the mode of directory", errno);
  return ok();
}

}  // namespace kvb
