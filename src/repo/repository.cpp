#include "repo/repository.h"

#include "common/atomic_file.h"
#include "common/base64.h"
#include "common/time.h"

#include <boost/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace kvb::repo {
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

constexpr size_t kPackTarget = 16 << 20;
const uint8_t kIndexAad[] = {'k', 'v', 'b', '-', 'i', 'n', 'd', 'e', 'x'};
const uint8_t kSnapshotAad[] = {'k', 'v', 'b', '-', 's', 'n', 'a', 'p'};

std::string random_hex(size_t bytes) {
  Key256 k = MasterKey::generate().mac;  // 32 random bytes
  return to_hex(std::span<const uint8_t>(k.data(), std::min(bytes, k.size())));
}

std::span<const uint8_t> as_bytes(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

Result<BlobId> parse_id(std::string_view hex) {
  BlobId id{};
  if (hex.size() != 64) return Error(Errc::kParse, "blob id \"" + std::string(hex) + "\" is not 64 hex digits");
  for (size_t i = 0; i < 32; ++i) {
    auto nib = [&](char c) -> int { return std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1; };
    int hi = nib(hex[2 * i]), lo = nib(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return Error(Errc::kParse, "blob id \"" + std::string(hex) + "\" is not hex");
    id[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return id;
}

Status write_sealed(const fs::path& path, const Key256& key, std::span<const uint8_t> aad, const json::value& doc) {
  auto sealed = seal(key, aad, as_bytes(json::serialize(doc)));
  KVB_CHECK(make_directories(path.parent_path()));
  return write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(sealed.data()), sealed.size()), 0600);
}

Result<json::value> read_sealed(const fs::path& path, const Key256& key, std::span<const uint8_t> aad) {
  KVB_TRY(auto text, read_file(path));
  auto plain = open(key, aad, as_bytes(text));
  if (!plain) return Error(Errc::kParse, path.string() + ": " + plain.error().message);
  boost::system::error_code ec;
  auto v = json::parse(std::string_view(reinterpret_cast<const char*>(plain->data()), plain->size()), ec);
  if (ec) return Error(Errc::kParse, path.string() + ": not JSON: " + ec.message());
  return v;
}

fs::path pack_path(const fs::path& dir, const std::string& name) { return dir / "data" / name.substr(0, 2) / name; }

}  // namespace

Repository::Repository(fs::path dir, MasterKey key, ChunkerParams params)
    : dir_(std::move(dir)), key_(key), chunker_(params, key.chunker_seed()) {}

Status Repository::init(const fs::path& dir, const Secret& password, uint64_t scrypt_n) {
  if (fs::exists(dir / "config")) return Error(Errc::kAlreadyExists, "a repository already exists in " + dir.string());
  KVB_CHECK(make_directories(dir / "keys"));
  ChunkerParams p;
  json::object config{{"version", 1}, {"id", random_hex(16)},
                      {"chunker", json::object{{"min", p.min}, {"avg", p.avg}, {"max", p.max}}}};
  auto master = MasterKey::generate();
  KdfParams kdf;
  kdf.n = scrypt_n;
  auto wrapped = wrap_master_key(master, password, kdf);
  json::object keyfile{{"kdf", "scrypt"}, {"n", kdf.n}, {"r", kdf.r}, {"p", kdf.p},
                       {"salt", base64_encode(std::string_view(reinterpret_cast<const char*>(kdf.salt.data()), kdf.salt.size()))},
                       {"data", base64_encode(std::string_view(reinterpret_cast<const char*>(wrapped.data()), wrapped.size()))}};
  KVB_CHECK(write_file_atomic(dir / "keys" / (random_hex(16) + ".json"), json::serialize(keyfile), 0600));
  return write_file_atomic(dir / "config", json::serialize(config));
}

Result<std::unique_ptr<Repository>> Repository::open(const fs::path& dir, const Secret& password) {
  KVB_TRY(auto config_text, read_file(dir / "config"));
  boost::system::error_code ec;
  auto config = json::parse(config_text, ec);
  if (ec || !config.is_object()) return Error(Errc::kParse, (dir / "config").string() + ": not a repository config");
  ChunkerParams p;
  if (const auto* c = config.as_object().if_contains("chunker"); c && c->is_object()) {
    p.min = c->at("min").to_number<size_t>();
    p.avg = c->at("avg").to_number<size_t>();
    p.max = c->at("max").to_number<size_t>();
  }
  std::error_code fec;
  for (const auto& e : fs::directory_iterator(dir / "keys", fec)) {
    auto text = read_file(e.path());
    if (!text) continue;
    auto kv = json::parse(*text, ec);
    if (ec || !kv.is_object()) continue;
    const auto& k = kv.as_object();
    KdfParams kdf;
    kdf.n = k.at("n").to_number<uint64_t>();
    kdf.r = k.at("r").to_number<uint32_t>();
    kdf.p = k.at("p").to_number<uint32_t>();
    auto salt = base64_decode(k.at("salt").as_string());
    auto data = base64_decode(k.at("data").as_string());
    if (!salt || !data || salt->size() != kdf.salt.size()) continue;
    std::memcpy(kdf.salt.data(), salt->data(), kdf.salt.size());
    auto master = unwrap_master_key(as_bytes(*data), password, kdf);
    if (!master) continue;
    std::unique_ptr<Repository> repo(new Repository(dir, *master, p));
    KVB_CHECK(repo->load_index());
    return repo;
  }
  return Error(Errc::kInvalidArgument, "wrong password for the repository in " + dir.string() + " (no key file opens with it)");
}

Status Repository::load_index() {
  std::error_code ec;
  if (!fs::exists(dir_ / "index", ec)) return ok();
  for (const auto& e : fs::directory_iterator(dir_ / "index", ec)) {
    KVB_TRY(auto doc, read_sealed(e.path(), key_.encryption, kIndexAad));
    for (const auto& pk : doc.at("packs").as_array()) {
      std::string pack(pk.at("id").as_string());
      for (const auto& b : pk.at("blobs").as_array()) {
        PackEntry en;
        KVB_TRY(en.id, parse_id(b.at("id").as_string()));
        en.type = static_cast<BlobType>(b.at("type").to_number<int>());
        en.offset = b.at("offset").to_number<uint64_t>();
        en.length = b.at("length").to_number<uint32_t>();
        en.plaintext_size = b.at("size").to_number<uint32_t>();
        index_[en.id] = Location{pack, en};
      }
    }
  }
  return ok();
}

Status Repository::flush_pack(PutStats& stats, std::vector<PackEntry>& written, std::string& name) {
  if (writer_.count() == 0) return ok();
  written = writer_.entries();
  auto bytes = writer_.finish(key_);
  name = pack_id(bytes);
  auto path = pack_path(dir_, name);
  KVB_CHECK(make_directories(path.parent_path()));
  KVB_CHECK(write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), 0600));
  for (const auto& e : written) index_[e.id] = Location{name, e};
  new_packs_.emplace_back(name, written);
  ++stats.packs;
  return ok();
}

Result<PutStats> Repository::put(const std::string& name, const fs::path& source) {
  int fd = ::open(source.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error(Errc::kIo, "cannot open " + source.string() + ": " + std::strerror(errno));
  PutStats stats;
  json::array extents;
  std::vector<uint8_t> buf;
  size_t max = chunker_.params().max;
  bool eof = false;
  uint64_t offset = 0;
  std::vector<PackEntry> written;
  std::string pack_name;
  while (!eof || !buf.empty()) {
    while (!eof && buf.size() < 2 * max) {
      size_t old = buf.size();
      buf.resize(old + max);
      ssize_t n = ::read(fd, buf.data() + old, max);
      if (n < 0 && errno == EINTR) n = 0;
      if (n < 0) {
        int err = errno;
        ::close(fd);
        return Error(Errc::kIo, "cannot read " + source.string() + ": " + std::strerror(err));
      }
      buf.resize(old + static_cast<size_t>(n));
      if (n == 0) eof = true;
    }
    if (buf.empty()) break;
    size_t len = chunker_.cut(buf, eof);
    if (len == 0) len = buf.size();
    std::span<const uint8_t> chunk(buf.data(), len);
    ++stats.chunks;
    stats.bytes += len;
    if (all_zero(chunk)) {
      stats.zero_bytes += len;
      extents.push_back(json::array{offset, len, nullptr});
    } else {
      BlobId id = blob_id(key_, chunk);
      if (!index_.count(id)) {
        auto blob = encode_blob(key_, chunk);
        writer_.add(blob);
        index_[id] = Location{"", PackEntry{}};  // pending until its pack is written
        ++stats.new_chunks;
        stats.new_bytes += len;
        stats.stored_bytes += blob.bytes.size();
        if (writer_.size() >= kPackTarget) {
          auto st = flush_pack(stats, written, pack_name);
          if (!st) {
            ::close(fd);
            return st.error();
          }
        }
      }
      extents.push_back(json::array{offset, len, to_hex(id)});
    }
    offset += len;
    buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(len));
  }
  ::close(fd);
  KVB_CHECK(flush_pack(stats, written, pack_name));
  // The index of the new packs, then the snapshot that needs it.
  if (!new_packs_.empty()) {
    json::array packs;
    for (const auto& [pname, entries] : new_packs_) {
      json::array blobs;
      for (const auto& e : entries) {
        blobs.push_back(json::object{{"id", to_hex(e.id)}, {"type", static_cast<int>(e.type)}, {"offset", e.offset},
                                     {"length", e.length}, {"size", e.plaintext_size}});
      }
      packs.push_back(json::object{{"id", pname}, {"blobs", blobs}});
    }
    KVB_CHECK(write_sealed(dir_ / "index" / random_hex(16), key_.encryption, kIndexAad, json::object{{"packs", packs}}));
    new_packs_.clear();
  }
  json::object snap{{"name", name}, {"source", source.string()}, {"time", format_rfc3339(WallClock::now(), TimePrecision::kNanos)},
                    {"size", offset}, {"extents", extents}};
  KVB_CHECK(write_sealed(dir_ / "snapshots" / random_hex(16), key_.encryption, kSnapshotAad, snap));
  return stats;
}

Result<std::vector<SnapshotInfo>> Repository::snapshots() {
  std::vector<SnapshotInfo> out;
  std::error_code ec;
  if (!fs::exists(dir_ / "snapshots", ec)) return out;
  for (const auto& e : fs::directory_iterator(dir_ / "snapshots", ec)) {
    KVB_TRY(auto doc, read_sealed(e.path(), key_.encryption, kSnapshotAad));
    out.push_back(SnapshotInfo{e.path().filename().string(), std::string(doc.at("name").as_string()),
                               std::string(doc.at("time").as_string()), doc.at("size").to_number<uint64_t>()});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.time < b.time; });
  return out;
}

Status Repository::get(const std::string& snapshot, const fs::path& target) {
  KVB_TRY(auto all, snapshots());
  std::string id;
  for (const auto& s : all) {
    if (s.id == snapshot || s.name == snapshot) id = s.id;  // the newest of a name wins (sorted by time)
  }
  if (id.empty()) return Error(Errc::kNotFound, "no snapshot \"" + snapshot + "\" in " + dir_.string());
  KVB_TRY(auto doc, read_sealed(dir_ / "snapshots" / id, key_.encryption, kSnapshotAad));
  int out = ::open(target.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out < 0) return Error(Errc::kIo, "cannot create " + target.string() + ": " + std::strerror(errno));
  auto fail = [&](Error e) {
    ::close(out);
    return e;
  };
  for (const auto& ext : doc.at("extents").as_array()) {
    const auto& a = ext.as_array();
    uint64_t off = a.at(0).to_number<uint64_t>();
    if (a.at(2).is_null()) continue;  // zero: a hole
    auto bid = parse_id(a.at(2).as_string());
    if (!bid) return fail(bid.error());
    auto it = index_.find(*bid);
    if (it == index_.end() || it->second.pack.empty()) return fail(Error(Errc::kNotFound, "blob " + to_hex(*bid) + " is in no pack"));
    const auto& loc = it->second;
    int pf = ::open(pack_path(dir_, loc.pack).c_str(), O_RDONLY | O_CLOEXEC);
    if (pf < 0) return fail(Error(Errc::kNotFound, "pack " + loc.pack + " is missing"));
    std::vector<uint8_t> stored(loc.entry.length);
    ssize_t n = ::pread(pf, stored.data(), stored.size(), static_cast<off_t>(loc.entry.offset));
    ::close(pf);
    if (n != static_cast<ssize_t>(stored.size())) return fail(Error(Errc::kParse, "pack " + loc.pack + " is truncated"));
    auto plain = decode_blob(key_, *bid, stored);
    if (!plain) return fail(Error(plain.error().code, "pack " + loc.pack + ": " + plain.error().message));
    if (::pwrite(out, plain->data(), plain->size(), static_cast<off_t>(off)) != static_cast<ssize_t>(plain->size())) {
      return fail(Error(Errc::kIo, "cannot write " + target.string() + ": " + std::strerror(errno)));
    }
  }
  if (::ftruncate(out, static_cast<off_t>(doc.at("size").to_number<uint64_t>())) != 0 || ::fsync(out) != 0) {
    return fail(Error(Errc::kIo, "cannot finish " + target.string() + ": " + std::strerror(errno)));
  }
  ::close(out);
  return ok();
}

CheckReport Repository::check(bool read_data) {
  CheckReport r;
  std::error_code ec;
  std::map<std::string, std::vector<PackEntry>> packs;
  for (const auto& e : fs::recursive_directory_iterator(dir_ / "data", ec)) {
    if (!e.is_regular_file() || e.path().filename().string().find(".tmp-") != std::string::npos) continue;
    std::string name = e.path().filename().string();
    ++r.packs;
    auto text = read_file(e.path());
    if (!text) {
      r.problems.push_back("pack " + name + ": " + text.error().message);
      continue;
    }
    if (pack_id(as_bytes(*text)) != name) r.problems.push_back("pack " + name + ": content does not match its name");
    auto entries = read_pack_trailer(key_, as_bytes(*text), name);
    if (!entries) {
      r.problems.push_back(entries.error().message);
      continue;
    }
    packs[name] = *entries;
    for (const auto& en : *entries) {
      ++r.blobs;
      if (!read_data) continue;
      auto plain = decode_blob(key_, en.id, as_bytes(*text).subspan(en.offset, en.length));
      if (!plain) r.problems.push_back("pack " + name + ": " + plain.error().message);
    }
  }
  for (const auto& [id, loc] : index_) {
    if (!packs.count(loc.pack)) r.problems.push_back("index: blob " + to_hex(id) + " names pack " + loc.pack + ", which is missing");
  }
  auto snaps = snapshots();
  if (!snaps) r.problems.push_back(snaps.error().message);
  return r;
}

}  // namespace kvb::repo
