// What every location shares: opening one by name (a directory or an s3://
// URL), path validation, and the defaults of the optional operations.
#include "location/location.h"

#include "location/s3/s3_location.h"

#include <cctype>
#include <cstdlib>

namespace kvb::location {
namespace fs = std::filesystem;

Status validate_relative_path(const std::string& path) {
  if (path.empty() || path.front() == '/') return Error(Errc::kInvalidArgument, "location path \"" + path + "\" must be relative");
  for (const auto& part : fs::path(path)) {
    if (part == ".." || part == ".") return Error(Errc::kInvalidArgument, "location path \"" + path + "\" must not contain . or ..");
  }
  if (path.find('\0') != std::string::npos) return Error(Errc::kInvalidArgument, "location path holds a NUL byte");
  return ok();
}

std::string child_location(const std::string& url_or_dir, const std::string& child) {
  if (url_or_dir.rfind("s3://", 0) == 0) {
    auto q = url_or_dir.find('?');
    std::string base = url_or_dir.substr(0, q), query = q == std::string::npos ? "" : url_or_dir.substr(q);
    while (base.size() > 5 && base.back() == '/') base.pop_back();
    return base + "/" + child + query;
  }
  return (std::filesystem::path(url_or_dir) / child).string();
}

std::string default_location() {
  if (const char* env = std::getenv("KVBACKUP_LOCATION"); env && *env) return env;
  return (fs::current_path() / "kvbackup-backups").string();
}

Result<std::unique_ptr<Location>> open(const std::string& name, OpenMode mode) {
  if (name.empty()) return Error(Errc::kInvalidArgument, "an empty backup location");
  // Anything with a scheme ("word:" before the first '/') is a URL: s3:// is
  // served, every other one ("gs://", "azure://", "s3:/typo", "file:x") is an
  // error, never a local directory named after it.
  size_t colon = name.find(':');
  size_t slash = name.find('/');
  bool url_like = colon != std::string::npos && colon > 0 && (slash == std::string::npos || colon < slash);
  if (url_like) {
    bool scheme_chars = std::isalpha(static_cast<unsigned char>(name[0]));
    for (size_t i = 0; i < colon; ++i) {
      char c = name[i];
      scheme_chars = scheme_chars && (std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.');
    }
    if (name.rfind("s3://", 0) == 0) return s3::open_s3(name, mode);
    std::string shown = name.substr(0, name.find('?'));
    return Error(Errc::kInvalidArgument,
                 "backup location \"" + shown + "\" " +
                     (scheme_chars ? "has the scheme \"" + name.substr(0, colon) + ":\", which kvbackup does not serve" : "looks like a URL") +
                     ": use s3://BUCKET/PREFIX or a directory (write ./" + shown + " for a directory of that name)");
  }
  return open_local(name, mode);
}

Result<std::string> Location::read_range(const std::string& path, uint64_t offset, uint64_t length) const {
  KVB_TRY(auto all, get(path));
  if (offset > all.size() || length > all.size() - offset) {
    return Error(Errc::kDamaged, describe() + "/" + path + " holds " + std::to_string(all.size()) + " bytes, fewer than " +
                                     std::to_string(offset + length));
  }
  return all.substr(offset, length);
}

Result<std::vector<FileInfo>> Location::walk(const std::string& dir) const {
  return Error(Errc::kInvalidArgument, describe() + ": cannot list " + dir + " recursively");
}

Status Location::remove_files(const std::vector<std::string>& paths) {
  for (const auto& p : paths) KVB_CHECK(remove(p));
  return ok();
}

Result<std::unique_ptr<Lock>> Location::lock(LockMode, std::chrono::milliseconds) {
  return Error(Errc::kInvalidArgument, describe() + " cannot be locked");
}

Status Location::create(const std::string& path, std::string_view data) {
  if (exists(path)) return Error(Errc::kAlreadyExists, describe() + "/" + path + " exists");
  return put(path, data);
}

Result<std::unique_ptr<Lock>> Location::lock_path(const std::string& path, std::chrono::milliseconds) {
  return Error(Errc::kInvalidArgument, describe() + " cannot lock " + path);
}

}  // namespace kvb::location
