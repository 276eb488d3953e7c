#include "repo/restore_target.h"

#include "common/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

namespace kvb::repo {
namespace fs = std::filesystem;

namespace {

Error io_error(const std::string& what, const fs::path& path, int err) {
  return Error(Errc::kIo, what + " " + path.string() + ": " + std::strerror(err));
}

std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

}  // namespace

Result<RestoreTarget> RestoreTarget::open(const fs::path& target, bool overwrite) {
  if (target == "-") return RestoreTarget(STDOUT_FILENO, Kind::kStream, "standard output", false);
  struct stat st {};
  bool exists = ::lstat(target.c_str(), &st) == 0;
  if (!exists && errno != ENOENT) return io_error("cannot inspect", target, errno);
  if (exists && S_ISLNK(st.st_mode)) {
    std::error_code ec;
    auto to = fs::read_symlink(target, ec);
    return Error(Errc::kInvalidArgument, "target " + target.string() + " is a symbolic link" + (ec ? "" : " to " + to.string()) +
                                             "; kvbackup does not write through links: give the path it points to");
  }
  if (exists && S_ISDIR(st.st_mode)) {
    return Error(Errc::kInvalidArgument, "target " + target.string() + " is a directory; give a file, a block device or -");
  }
  if (exists && (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode))) {
    int fd = ::open(target.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return io_error("cannot open for writing", target, errno);
    return RestoreTarget(fd, Kind::kStream, target.string(), true);
  }
  if (exists && !overwrite) {
    return Error(Errc::kInvalidArgument, "target " + target.string() + (S_ISBLK(st.st_mode) ? " is a block device" : " exists") +
                                           "; pass --overwrite to replace its content with the snapshot");
  }
  if (exists && S_ISBLK(st.st_mode)) {
    int fd = ::open(target.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return io_error("cannot open for writing", target, errno);
    return RestoreTarget(fd, Kind::kBlockDevice, target.string(), true);
  }
  if (exists && !S_ISREG(st.st_mode)) {
    return Error(Errc::kInvalidArgument, "target " + target.string() + " is neither a file, a block device, a FIFO nor a character device");
  }
  fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  fs::path tmp = dir / ("." + target.filename().string() + ".kvbackup-" + random_suffix());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return io_error("cannot create a temporary file beside the target", tmp, errno);
  // A replaced file keeps its permissions; a new one is private (the image may hold secrets).
  if (exists) (void)::fchmod(fd, st.st_mode & 07777);
  RestoreTarget t(fd, Kind::kFile, target.string(), true);
  t.target_ = target;
  t.temporary_ = tmp;
  t.replace_ = exists;
  return t;
}

RestoreTarget::RestoreTarget(RestoreTarget&& o) noexcept
    : fd_(o.fd_), kind_(o.kind_), name_(std::move(o.name_)), owned_(o.owned_), target_(std::move(o.target_)),
      temporary_(std::move(o.temporary_)), replace_(o.replace_) {
  o.owned_ = false;
  o.temporary_.clear();
}

RestoreTarget::~RestoreTarget() {
  if (owned_) ::close(fd_);
  if (!temporary_.empty()) ::unlink(temporary_.c_str());
}

Status RestoreTarget::commit() {
  if (kind_ == Kind::kStream) return ok();
  if (::fsync(fd_) != 0) return io_error("cannot flush", name_, errno);
  if (kind_ == Kind::kBlockDevice) return ok();
  if (replace_) {
    if (::rename(temporary_.c_str(), target_.c_str()) != 0) return io_error("cannot rename the restored file into place as", target_, errno);
  } else if (::renameat2(AT_FDCWD, temporary_.c_str(), AT_FDCWD, target_.c_str(), RENAME_NOREPLACE) != 0) {
    int err = errno;
    if (err == EEXIST) {
      return Error(Errc::kAlreadyExists, "target " + target_.string() + " appeared while the snapshot was restored; it was left as it is "
                                         "(pass --overwrite to replace it)");
    }
    if (err != EINVAL && err != ENOSYS) return io_error("cannot rename the restored file into place as", target_, err);
    // A file system without RENAME_NOREPLACE: link() refuses an existing name too.
    if (::link(temporary_.c_str(), target_.c_str()) != 0) {
      err = errno;
      if (err == EEXIST) return Error(Errc::kAlreadyExists, "target " + target_.string() + " appeared while the snapshot was restored");
      return io_error("cannot link the restored file into place as", target_, err);
    }
    ::unlink(temporary_.c_str());
  }
  temporary_.clear();
  return sync_directory(target_.parent_path().empty() ? fs::path(".") : target_.parent_path());
}

}  // namespace kvb::repo
