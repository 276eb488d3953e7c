#include "location/s3/s3_location.h"

#include "location/s3/s3_lock.h"

#include <algorithm>
#include <random>
#include <set>
#include <unistd.h>

namespace kvb::location::s3 {
namespace {

class S3Location : public Location {
 public:
  S3Location(std::shared_ptr<Client> client, S3Options options) : client_(std::move(client)), options_(std::move(options)) {}

  std::string describe() const override { return client_->settings().display; }
  std::optional<std::filesystem::path> local_root() const override { return std::nullopt; }
  unsigned parallelism() const override { return std::max(1u, options_.parallelism); }

  Status put(const std::string& path, std::string_view data, bool) override {
    KVB_CHECK(validate_relative_path(path));
    return client_->put_object(key(path), data);
  }
  // S3 stores an object durably before it answers: nothing is deferred.
  Status put_deferred(const std::string& path, std::string_view data, bool secret) override { return put(path, data, secret); }
  Status sync() override { return ok(); }

  // If-None-Match: * makes the server the judge where it honours the header
  // (radosgw: 412 when the key exists). Around it: a look first (a server
  // that ignores the header would silently replace an existing object) and a
  // read back after (a writer of the same instant on such a server replaced
  // ours: we lose). A retried request whose first attempt was stored meets
  // 412 too: the object is ours when it holds our bytes. A server that
  // refuses the header (501) gets a plain PUT between the two checks. On a
  // server without conditional writes two writers of the same instant may
  // both pass, which is why every writer of a journal entry holds its run
  // lock first (docs/location.md).
  Status create(const std::string& path, std::string_view data) override {
    KVB_CHECK(validate_relative_path(path));
    const std::string k = key(path);
    auto exists_already = [&]() -> Status {
      auto there = client_->get_object(k);
      if (there && *there == data) return ok();
      if (!there && there.error().code != Errc::kNotFound) return there.error();
      return Error(Errc::kAlreadyExists, client_->where(k) + (there ? " exists" : " was removed while we wrote it"));
    };
    if (auto before = client_->get_object(k); before || before.error().code != Errc::kNotFound) return exists_already();
    auto st = client_->put_object(k, data, /*if_none_match=*/true);
    if (!st && st.error().code == Errc::kAlreadyExists) return exists_already();
    if (!st && st.error().http_status == 501) st = client_->put_object(k, data);
    if (!st) return st;
    KVB_TRY(auto back, client_->get_object(k));
    if (back != data) return Error(Errc::kAlreadyExists, client_->where(k) + " was written by another process at the same moment");
    return ok();
  }

  Result<std::string> get(const std::string& path) const override {
    KVB_CHECK(validate_relative_path(path));
    return client_->get_object(key(path));
  }

  Result<std::string> read_range(const std::string& path, uint64_t offset, uint64_t length) const override {
    KVB_CHECK(validate_relative_path(path));
    return client_->get_object(key(path), std::make_pair(offset, length));
  }

  bool exists(const std::string& path) const override {
    if (!validate_relative_path(path)) return false;
    if (client_->head_object(key(path))) return true;
    auto under = client_->list(key(path) + "/", "", 1);
    return under && !under->objects.empty();
  }

  Result<std::vector<std::string>> list(const std::string& dir) const override {
    KVB_CHECK(validate_relative_path(dir));
    std::string base = key(dir) + "/";
    KVB_TRY(auto page, client_->list(base, "/"));
    std::set<std::string> names;
    for (const auto& o : page.objects) {
      std::string name = o.key.substr(base.size());
      if (!name.empty()) names.insert(name);
    }
    for (const auto& p : page.prefixes) {
      std::string name = p.substr(base.size());
      while (!name.empty() && name.back() == '/') name.pop_back();
      if (!name.empty()) names.insert(name);
    }
    return std::vector<std::string>(names.begin(), names.end());
  }

  Result<std::vector<FileInfo>> walk(const std::string& dir) const override {
    KVB_CHECK(validate_relative_path(dir));
    KVB_TRY(auto page, client_->list(key(dir) + "/"));
    std::vector<FileInfo> out;
    out.reserve(page.objects.size());
    const size_t strip = prefix().empty() ? 0 : prefix().size() + 1;
    for (const auto& o : page.objects) out.push_back(FileInfo{o.key.substr(strip), o.size, o.last_modified, false});
    std::sort(out.begin(), out.end(), [](const FileInfo& a, const FileInfo& b) { return a.path < b.path; });
    return out;
  }

  Status remove(const std::string& path) override {
    KVB_CHECK(validate_relative_path(path));
    KVB_TRY(auto page, client_->list(key(path) + "/"));
    std::vector<std::string> keys{key(path)};
    for (const auto& o : page.objects) keys.push_back(o.key);
    return client_->delete_objects(keys);
  }

  Status remove_files(const std::vector<std::string>& paths) override {
    std::vector<std::string> keys;
    keys.reserve(paths.size());
    for (const auto& p : paths) {
      KVB_CHECK(validate_relative_path(p));
      keys.push_back(key(p));
    }
    return client_->delete_objects(keys);
  }

  Result<std::unique_ptr<Lock>> lock(LockMode mode, std::chrono::milliseconds wait) override {
    return S3Lock::acquire(client_, key("locks") + "/", describe(), mode, wait, options_.lock);
  }

  // Lock objects under <path>/ (s3_lock.h), exclusive: a holder that died on
  // this host is stale at once, one elsewhere when its expiry has passed.
  Result<std::unique_ptr<Lock>> lock_path(const std::string& path, std::chrono::milliseconds wait) override {
    KVB_CHECK(validate_relative_path(path));
    return S3Lock::acquire(client_, key(path) + "/", describe() + "/" + path, LockMode::kExclusive, wait, options_.lock);
  }

  std::string key(const std::string& path) const { return prefix().empty() ? path : prefix() + "/" + path; }
  const std::string& prefix() const { return client_->settings().prefix; }

 private:
  std::shared_ptr<Client> client_;
  S3Options options_;
};

}  // namespace

Result<std::unique_ptr<Location>> open_s3(const std::string& url, OpenMode mode, const S3Options& options) {
  KVB_TRY(auto parsed, parse_s3_url(url));
  KVB_TRY(auto settings, resolve_settings(parsed, options.env));
  auto client = Client::create(settings, options.client);
  if (!client) return Error(client.error().code, "backup location " + parsed.display() + ": " + client.error().message);
  std::shared_ptr<Client> shared(std::move(*client));
  auto named = [&](const Error& e) {
    Error out = e;
    out.message = "backup location " + parsed.display() + ": " + e.message;
    return out;
  };
  if (auto st = shared->check_bucket(); !st) return named(st.error());
  auto loc = std::make_unique<S3Location>(shared, options);
  if (mode == OpenMode::kExisting) {
    if (!settings.prefix.empty()) {
      KVB_TRY(auto page, shared->list(settings.prefix + "/", "", 1));
      if (page.objects.empty()) {
        return Error(Errc::kNotFound, "backup location " + parsed.display() + " does not exist (no object under it; check --location, "
                                      "$KVBACKUP_LOCATION or --repo)");
      }
    }
    return std::unique_ptr<Location>(std::move(loc));
  }
  // Prove that we may write: a probe object, written and removed.
  std::string probe = ".kvbackup-write-probe-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}());
  if (auto st = loc->put(probe, "probe", false); !st) return named(st.error());
  if (auto st = shared->delete_object(loc->key(probe)); !st) return named(st.error());
  return std::unique_ptr<Location>(std::move(loc));
}

}  // namespace kvb::location::s3
