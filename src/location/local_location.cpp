// LocalLocation: a location in a local directory (or any mounted file system).
//
// Files are written under a temporary name, fsynced (unless deferred) and
// renamed into place, mode 0600; directories are created 0700. The lock is
// flock(2) on the directory itself, a run lock flock(2) on its file
// (local_lock.cpp).
#include "common/atomic_file.h"
#include "location/local_lock.h"
#include "location/location.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

namespace kvb::location {
namespace fs = std::filesystem;

namespace {

bool is_temporary(const std::string& name) { return name.find(".tmp-") != std::string::npos; }

std::chrono::system_clock::time_point mtime_of(const struct stat& st) {
  return std::chrono::system_clock::time_point(std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec));
}

class LocalLocation : public Location {
 public:
  explicit LocalLocation(fs::path root) : root_(std::move(root)) {}

  std::string describe() const override { return root_.string(); }
  std::optional<fs::path> local_root() const override { return root_; }

  Status put(const std::string& path, std::string_view data, bool) override {
    KVB_CHECK(validate_relative_path(path));
    fs::path p = root_ / path;
    KVB_CHECK(make_directories(p.parent_path(), 0700));
    return write_file_atomic(p, data, 0600);
  }

  Status put_deferred(const std::string& path, std::string_view data, bool) override {
    KVB_CHECK(validate_relative_path(path));
    fs::path p = root_ / path;
    KVB_CHECK(make_directories(p.parent_path(), 0700));
    return write_file_atomic(p, data, 0600, /*durable=*/false);
  }

  Status sync() override { return sync_filesystem(root_); }

  // link(2) fails with EEXIST instead of replacing: the complete temporary
  // file appears under its name, or nothing does.
  Status create(const std::string& path, std::string_view data) override {
    KVB_CHECK(validate_relative_path(path));
    fs::path p = root_ / path;
    KVB_CHECK(make_directories(p.parent_path(), 0700));
    fs::path tmp = p;
    static std::atomic<uint64_t> serial{0};
    tmp += ".tmp-create-" + std::to_string(::getpid()) + "-" + std::to_string(serial++);
    KVB_CHECK(write_file_atomic(tmp, data, 0600));
    int rc = ::link(tmp.c_str(), p.c_str());
    int err = errno;
    ::unlink(tmp.c_str());
    if (rc != 0 && err == EEXIST) return Error(Errc::kAlreadyExists, p.string() + " exists");
    if (rc != 0) return Error(Errc::kIo, "cannot create " + p.string() + ": " + std::strerror(err));
    return sync_directory(p.parent_path());
  }

  Result<std::string> get(const std::string& path) const override {
    KVB_CHECK(validate_relative_path(path));
    return read_file(root_ / path);
  }

  void prefetch(const std::string& path, uint64_t offset, uint64_t length) const override {
    if (!validate_relative_path(path)) return;
    int fd = ::open((root_ / path).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    (void)::posix_fadvise(fd, static_cast<off_t>(offset), static_cast<off_t>(length), POSIX_FADV_WILLNEED);
    ::close(fd);
  }

  Result<std::string> read_range(const std::string& path, uint64_t offset, uint64_t length) const override {
    KVB_CHECK(validate_relative_path(path));
    fs::path p = root_ / path;
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      return Error(err == ENOENT ? Errc::kNotFound : Errc::kIo, "cannot read " + p.string() + ": " + std::strerror(err));
    }
    std::string out(length, '\0');
    size_t got = 0;
    while (got < length) {
      ssize_t n = ::pread(fd, out.data() + got, length - got, static_cast<off_t>(offset + got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        ::close(fd);
        return Error(Errc::kIo, "cannot read " + p.string() + ": " + std::strerror(err));
      }
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    ::close(fd);
    if (got != length) {
      return Error(Errc::kDamaged, p.string() + " ends before byte " + std::to_string(offset + length) + " (truncated?)");
    }
    return out;
  }

  bool exists(const std::string& path) const override {
    std::error_code ec;
    return validate_relative_path(path) && fs::exists(root_ / path, ec);
  }

  Result<std::vector<std::string>> list(const std::string& dir) const override {
    KVB_CHECK(validate_relative_path(dir));
    std::vector<std::string> out;
    std::error_code ec;
    fs::path p = root_ / dir;
    if (!fs::exists(p, ec)) return out;
    for (const auto& e : fs::directory_iterator(p, ec)) {
      std::string name = e.path().filename().string();
      if (is_temporary(name)) continue;  // an interrupted atomic write
      out.push_back(name);
    }
    if (ec) return Error(Errc::kIo, "cannot list " + p.string() + ": " + ec.message());
    std::sort(out.begin(), out.end());
    return out;
  }

  Result<std::vector<FileInfo>> walk(const std::string& dir) const override {
    KVB_CHECK(validate_relative_path(dir));
    std::vector<FileInfo> out;
    std::error_code ec;
    fs::path p = root_ / dir;
    if (!fs::exists(p, ec)) return out;
    for (auto it = fs::recursive_directory_iterator(p, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      struct stat st {};
      if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      out.push_back(FileInfo{it->path().lexically_relative(root_).string(), static_cast<uint64_t>(st.st_size), mtime_of(st),
                             is_temporary(it->path().filename().string())});
    }
    if (ec) return Error(Errc::kIo, "cannot list " + p.string() + ": " + ec.message());
    std::sort(out.begin(), out.end(), [](const FileInfo& a, const FileInfo& b) { return a.path < b.path; });
    return out;
  }

  Status remove(const std::string& path) override {
    KVB_CHECK(validate_relative_path(path));
    std::error_code ec;
    fs::remove_all(root_ / path, ec);
    if (ec) return Error(Errc::kIo, "cannot remove " + (root_ / path).string() + ": " + ec.message());
    return sync_directory((root_ / path).parent_path());
  }

  Status remove_files(const std::vector<std::string>& paths) override {
    std::vector<fs::path> dirs;
    for (const auto& path : paths) {
      KVB_CHECK(validate_relative_path(path));
      std::error_code ec;
      fs::remove(root_ / path, ec);
      if (ec) return Error(Errc::kIo, "cannot remove " + (root_ / path).string() + ": " + ec.message());
      dirs.push_back((root_ / path).parent_path());
    }
    std::sort(dirs.begin(), dirs.end());
    dirs.erase(std::unique(dirs.begin(), dirs.end()), dirs.end());
    for (const auto& d : dirs) KVB_CHECK(sync_directory(d));
    return ok();
  }

  Result<std::unique_ptr<Lock>> lock(LockMode mode, std::chrono::milliseconds wait) override {
    return lock_directory(root_, mode, wait);
  }

  // flock decides at once: no contention to wait out.
  Result<std::unique_ptr<Lock>> lock_path(const std::string& path, std::chrono::milliseconds) override {
    KVB_CHECK(validate_relative_path(path));
    return lock_file(root_ / path);
  }

 private:
  fs::path root_;
};

}  // namespace

Result<std::unique_ptr<Location>> open_local(const fs::path& dir, OpenMode mode) {
  std::error_code ec;
  fs::path abs = fs::absolute(dir, ec);
  if (ec) abs = dir;
  abs = abs.lexically_normal();
  if (abs.has_filename() == false && abs.has_parent_path() && abs != abs.root_path()) abs = abs.parent_path();
  bool exists = fs::exists(abs, ec);
  if (exists && !fs::is_directory(abs, ec)) {
    return Error(Errc::kInvalidArgument, "backup location " + abs.string() + " exists and is not a directory");
  }
  if (!exists && mode == OpenMode::kExisting) {
    return Error(Errc::kNotFound, "backup location " + abs.string() + " does not exist (check --location, $KVBACKUP_LOCATION or --repo)");
  }
  if (mode == OpenMode::kExisting) return std::unique_ptr<Location>(new LocalLocation(abs));
  if (auto st = make_directories(abs, 0700); !st) {
    return Error(Errc::kIo, "backup location " + abs.string() + " cannot be created: " +
                                st.error().message.substr(st.error().message.rfind(": ") + 2));
  }
  fs::path probe = abs / (".kvbackup-write-probe-" + std::to_string(::getpid()));
  if (auto st = write_file_atomic(probe, "probe"); !st) {
    return Error(Errc::kIo, "backup location " + abs.string() + " is not writable: " +
                                st.error().message.substr(st.error().message.rfind(": ") + 2));
  }
  fs::remove(probe, ec);
  return std::unique_ptr<Location>(new LocalLocation(abs));
}

}  // namespace kvb::location
