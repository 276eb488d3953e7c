// Repository: creating, opening, listing, statistics and forget. put, get,
// check and prune each have a file of their own.
#include "repo/repository.h"

#include "common/base64.h"
#include "repo/layout.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cstring>
#include <thread>
#include <unordered_set>

namespace kvb::repo {
namespace json = boost::json;
namespace fs = std::filesystem;

Repository::Repository(std::shared_ptr<location::Location> loc, MasterKey key, ChunkerParams params, uint64_t pack_size,
                       std::unique_ptr<location::Lock> lock, LockMode mode)
    : loc_(std::move(loc)), key_(key), chunker_(params, key.chunker_seed()), pack_size_(pack_size), lock_(std::move(lock)), mode_(mode) {}

Status Repository::init(const fs::path& dir, const Secret& password, const InitOptions& options) {
  KVB_TRY(auto loc, location::open_local(dir, location::OpenMode::kCreate));
  return init(*loc, password, options);
}

Result<std::unique_ptr<Repository>> Repository::open(const fs::path& dir, const Secret& password, const OpenOptions& options) {
  KVB_TRY(auto loc, location::open_local(dir, location::OpenMode::kExisting));
  return open(std::shared_ptr<location::Location>(std::move(loc)), password, options);
}

Status Repository::init(location::Location& loc, const Secret& password, const InitOptions& options) {
  if (loc.exists("config")) return Error(Errc::kAlreadyExists, "a repository already exists in " + loc.describe());
  if (options.pack_size < (1 << 16) || options.pack_size > (uint64_t{1} << 30)) {
    return Error(Errc::kInvalidArgument, "pack size " + std::to_string(options.pack_size) + " is outside 64 KiB..1 GiB");
  }
  ChunkerParams p;
  json::object config{{"version", 1},
                      {"id", random_hex(16)},
                      {"chunker", json::object{{"min", p.min}, {"avg", p.avg}, {"max", p.max}}},
                      {"packSize", options.pack_size}};
  auto master = MasterKey::generate();
  KdfParams kdf;
  kdf.n = options.scrypt_n;
  auto wrapped = wrap_master_key(master, password, kdf);
  json::object keyfile{{"kdf", "scrypt"}, {"n", kdf.n}, {"r", kdf.r}, {"p", kdf.p},
                       {"salt", base64_encode(std::string_view(reinterpret_cast<const char*>(kdf.salt.data()), kdf.salt.size()))},
                       {"data", base64_encode(std::string_view(reinterpret_cast<const char*>(wrapped.data()), wrapped.size()))}};
  KVB_CHECK(loc.put("keys/" + random_hex(16) + ".json", json::serialize(keyfile)));
  return loc.put("config", json::serialize(config));
}

Result<std::unique_ptr<Repository>> Repository::open(std::shared_ptr<location::Location> loc, const Secret& password,
                                                     const OpenOptions& options) {
  const std::string where = loc->describe();
  auto config_path = where + "/config";
  auto config_text = loc->get("config");
  if (!config_text) {
    if (config_text.error().code != Errc::kNotFound) return config_text.error();
    return Error(Errc::kNotFound, "no repository in " + where + " (" + config_text.error().message + ")");
  }
  boost::system::error_code ec;
  auto config = json::parse(*config_text, ec);
  if (ec || !config.is_object()) return Error(Errc::kParse, config_path + ": not a repository config");
  const auto& c = config.as_object();
  if (const auto* v = c.if_contains("version"); !v || !v->is_int64() || v->as_int64() != 1) {
    return Error(Errc::kParse, config_path + ": field \"version\": this kvbackup reads version 1 only");
  }
  ChunkerParams p;
  uint64_t pack_size = InitOptions{}.pack_size;
  if (const auto* ch = c.if_contains("chunker"); ch && ch->is_object()) {
    const auto& o = ch->as_object();
    auto num = [&](const char* k, size_t& out) {
      if (const auto* v = o.if_contains(k)) out = v->to_number<size_t>(ec);
    };
    num("min", p.min);
    num("avg", p.avg);
    num("max", p.max);
    if (ec || p.min == 0 || p.min > p.avg || p.avg > p.max || (p.avg & (p.avg - 1)) != 0 || p.max > (64u << 20)) {
      return Error(Errc::kParse, config_path + ": field \"chunker\": sizes must satisfy 0 < min <= avg <= max <= 64 MiB, avg a power of two");
    }
  }
  if (const auto* v = c.if_contains("packSize")) {
    pack_size = v->to_number<uint64_t>(ec);
    if (ec || pack_size < (1 << 16) || pack_size > (uint64_t{1} << 30)) return Error(Errc::kParse, config_path + ": field \"packSize\" is out of range");
  }
  auto lock = loc->lock(options.mode, options.lock_wait);
  if (!lock) {
    if (lock.error().code != Errc::kConflict) return lock.error();
    return Error(Errc::kConflict, "repository " + where + " is in use: " +
                                      (options.mode == LockMode::kExclusive ? "forget and prune need it to themselves, and another kvbackup holds it"
                                                                            : "a forget or prune holds it") +
                                      " (" + lock.error().message + "; try again when that finishes)");
  }
  KVB_TRY(auto key_names, loc->list("keys"));
  std::vector<std::string> keyfiles;
  for (const auto& n : key_names) keyfiles.push_back("keys/" + n);
  if (keyfiles.empty()) {
    return Error(Errc::kDamaged, "the repository in " + where + " has no key files (" + where +
                                     "/keys is empty or missing): it cannot be opened");
  }
  // A key file that cannot be parsed is damage, not a wrong password: say so, naming it.
  std::vector<std::string> damaged;
  for (const auto& path : keyfiles) {
    auto text = loc->get(path);
    if (!text) {
      damaged.push_back(text.error().message);
      continue;
    }
    auto kv = json::parse(*text, ec);
    if (ec || !kv.is_object()) {
      damaged.push_back("key file " + where + "/" + path + " is damaged: not a JSON object");
      continue;
    }
    const auto& k = kv.as_object();
    KdfParams kdf;
    const auto *n = k.if_contains("n"), *r = k.if_contains("r"), *pp = k.if_contains("p");
    const auto *salt_text = k.if_contains("salt"), *data_text = k.if_contains("data");
    if (!n || !r || !pp || !salt_text || !salt_text->is_string() || !data_text || !data_text->is_string()) {
      damaged.push_back("key file " + where + "/" + path + " is damaged: \"n\", \"r\", \"p\", \"salt\" or \"data\" is missing");
      continue;
    }
    kdf.n = n->to_number<uint64_t>(ec);
    kdf.r = r->to_number<uint32_t>(ec);
    kdf.p = pp->to_number<uint32_t>(ec);
    auto salt = base64_decode(salt_text->as_string());
    auto data = base64_decode(data_text->as_string());
    if (ec || !salt || !data || salt->size() != kdf.salt.size()) {
      damaged.push_back("key file " + where + "/" + path + " is damaged: malformed scrypt parameters, salt or data");
      continue;
    }
    std::memcpy(kdf.salt.data(), salt->data(), kdf.salt.size());
    auto master = unwrap_master_key(as_bytes(*data), password, kdf);
    if (!master) continue;
    std::unique_ptr<Repository> repo(new Repository(loc, *master, p, pack_size, std::move(*lock), options.mode));
    if (options.load_index) {
      KVB_TRY(repo->index_, Index::load(*loc, master->encryption));
    }
    return repo;
  }
  if (!damaged.empty()) {
    std::string msg = damaged.front();
    if (damaged.size() > 1) msg += " (and " + std::to_string(damaged.size() - 1) + " more damaged key files)";
    if (damaged.size() < keyfiles.size()) msg += "; no intact key file opens with this password either";
    return Error(Errc::kDamaged, msg + ": restore the key file from a copy of the repository");
  }
  return Error(Errc::kInvalidArgument, "wrong password for the repository in " + where + " (no key file opens with it)");
}

unsigned Repository::worker_count(unsigned asked) {
  return asked > 0 ? asked : std::max(1u, std::thread::hardware_concurrency());
}

Status Repository::need_exclusive(const char* what) const {
  if (mode_ == LockMode::kExclusive) return ok();
  return Error(Errc::kInvalidArgument, std::string(what) + " needs the repository opened with the exclusive lock");
}

Status Repository::verify_stored(const Snapshot& snap, const std::string& index_file) const {
  KVB_CHECK(lock_->still_held());
  if (!index_file.empty() && !loc_->exists("index/" + index_file)) {
    return Error(Errc::kNotFound, "index file " + index_file + " it wrote vanished while it ran");
  }
  KVB_TRY(auto files, list_pack_files(*loc_));
  std::unordered_set<std::string> present;
  for (const auto& f : files) present.insert(f.name);
  std::vector<std::string> missing;
  std::unordered_set<uint32_t> seen;
  for (const auto& e : snap.extents) {
    if (!e.blob) continue;
    const auto* loc = index_.find(*e.blob);
    if (!loc) return Error(Errc::kNotFound, "blob " + to_hex(*e.blob) + " is in no index");
    if (seen.insert(loc->pack).second && !present.count(index_.pack_name(loc->pack))) missing.push_back(index_.pack_name(loc->pack));
  }
  if (missing.empty()) return ok();
  std::string names;
  for (size_t i = 0; i < missing.size() && i < 3; ++i) names += (i ? ", " : "") + missing[i];
  if (missing.size() > 3) names += " and " + std::to_string(missing.size() - 3) + " more";
  return Error(Errc::kNotFound, std::to_string(missing.size()) + " packs it needs vanished while it ran (" + names +
                                    "): was the repository pruned while its lock was broken?");
}

Result<std::vector<Snapshot>> Repository::snapshots() { return list_snapshots(*loc_, key_.encryption, false); }

Result<RepoStats> Repository::stats() {
  RepoStats s;
  KVB_TRY(auto snaps, snapshots());
  s.snapshots = snaps.size();
  for (const auto& sn : snaps) s.logical_bytes += sn.size;
  s.blobs = index_.size();
  for (const auto& [id, loc] : index_.blobs()) s.unique_bytes += loc.plaintext_size;
  KVB_TRY(auto packs, list_pack_files(*loc_));
  for (const auto& p : packs) {
    ++s.packs;
    s.stored_bytes += p.size;
  }
  return s;
}

Result<ForgetReport> Repository::forget(const RetentionPolicy& policy, bool dry_run) {
  KVB_CHECK(need_exclusive("forget"));
  if (policy.empty()) return Error(Errc::kInvalidArgument, "forget needs a retention rule (--keep-last, --keep-daily, --keep-weekly, --keep-monthly) or snapshot ids");
  KVB_TRY(auto snaps, snapshots());
  KVB_TRY(auto reasons, apply_retention(snaps, policy));
  ForgetReport r;
  for (size_t i = 0; i < snaps.size(); ++i) (reasons[i].empty() ? r.removed : r.kept).push_back(snaps[i]);
  if (!dry_run) {
    std::vector<std::string> paths;
    for (const auto& s : r.removed) paths.push_back("snapshots/" + s.id);
    KVB_CHECK(loc_->remove_files(paths));
  }
  return r;
}

Result<ForgetReport> Repository::forget_ids(const std::vector<std::string>& ids, bool dry_run) {
  KVB_CHECK(need_exclusive("forget"));
  KVB_TRY(auto snaps, snapshots());
  ForgetReport r;
  for (const auto& id : ids) {
    if (std::none_of(snaps.begin(), snaps.end(), [&](const Snapshot& s) { return s.id == id; })) {
      return Error(Errc::kNotFound, "no snapshot with id \"" + id + "\" in " + loc_->describe());
    }
  }
  for (const auto& s : snaps) (std::find(ids.begin(), ids.end(), s.id) != ids.end() ? r.removed : r.kept).push_back(s);
  if (!dry_run) {
    std::vector<std::string> paths;
    for (const auto& s : r.removed) paths.push_back("snapshots/" + s.id);
    KVB_CHECK(loc_->remove_files(paths));
  }
  return r;
}

}  // namespace kvb::repo
