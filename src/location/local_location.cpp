#include "common/atomic_file.h"
#include "location/location.h"

#include <algorithm>
#include <cstdlib>
#include <unistd.h>

namespace kvb::location {
namespace fs = std::filesystem;

Status validate_relative_path(const std::string& path) {
  if (path.empty() || path.front() == '/') return Error(Errc::kInvalidArgument, "location path \"" + path + "\" must be relative");
  for (const auto& part : fs::path(path)) {
    if (part == ".." || part == ".") return Error(Errc::kInvalidArgument, "location path \"" + path + "\" must not contain . or ..");
  }
  return ok();
}

fs::path default_location_dir() {
  if (const char* env = std::getenv("KVBACKUP_LOCATION"); env && *env) return env;
  return fs::current_path() / "kvbackup-backups";
}

namespace {

class LocalLocation : public Location {
 public:
  explicit LocalLocation(fs::path root) : root_(std::move(root)) {}

  std::string describe() const override { return root_.string(); }
  std::optional<fs::path> local_root() const override { return root_; }

  Status put(const std::string& path, std::string_view data, bool secret) override {
    KVB_CHECK(validate_relative_path(path));
    fs::path p = root_ / path;
    KVB_CHECK(make_directories(p.parent_path(), 0700));
    (void)secret;
    return write_file_atomic(p, data, 0600);
  }

  Status put_deferred(const std::string& path, std::string_view data, bool secret) override {
    KVB_CHECK(validate_relative_path(path));
    fs::path p = root_ / path;
    KVB_CHECK(make_directories(p.parent_path(), 0700));
    (void)secret;
    return write_file_atomic(p, data, 0600, /*durable=*/false);
  }

  Status sync() override { return sync_filesystem(root_); }

  Result<std::string> get(const std::string& path) const override {
    KVB_CHECK(validate_relative_path(path));
    return read_file(root_ / path);
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
      if (name.find(".tmp-") != std::string::npos) continue;  // an interrupted atomic write
      out.push_back(name);
    }
    if (ec) return Error(Errc::kIo, "cannot list " + p.string() + ": " + ec.message());
    std::sort(out.begin(), out.end());
    return out;
  }

  Status remove(const std::string& path) override {
    KVB_CHECK(validate_relative_path(path));
    std::error_code ec;
    fs::remove_all(root_ / path, ec);
    if (ec) return Error(Errc::kIo, "cannot remove " + (root_ / path).string() + ": " + ec.message());
    return sync_directory((root_ / path).parent_path());
  }

 private:
  fs::path root_;
};

}  // namespace

Result<std::unique_ptr<Location>> open_local(const fs::path& dir, OpenMode mode) {
  std::error_code ec;
  fs::path abs = fs::absolute(dir, ec);
  if (ec) abs = dir;
  bool exists = fs::exists(abs, ec);
  if (exists && !fs::is_directory(abs, ec)) {
    return Error(Errc::kInvalidArgument, "backup location " + abs.string() + " exists and is not a directory");
  }
  if (!exists && mode == OpenMode::kExisting) {
    return Error(Errc::kNotFound, "backup location " + abs.string() + " does not exist (check --location or $KVBACKUP_LOCATION)");
  }
  if (mode == OpenMode::kExisting) return std::unique_ptr<Location>(new LocalLocation(abs));
  if (auto st = make_directories(abs, 0700); !st) {
    return Error(Errc::kIo, "backup location " + abs.string() + " cannot be created: " +
                                st.error().message.substr(st.error().message.rfind(": ") + 2));
  }
  // Its own directories, private from the start (whoever creates them later).
  for (const char* sub : {"backups", "restores", "journal"}) {
    if (auto st = make_directories(abs / sub, 0700); !st) return st.error();
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
