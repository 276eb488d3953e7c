#include "repo/layout.h"

#include "common/atomic_file.h"
#include "repo/pack.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstring>

#include <sys/stat.h>

namespace kvb::repo {
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

std::span<const uint8_t> aad(SealedKind kind) {
  static const uint8_t index[] = {'k', 'v', 'b', '-', 'i', 'n', 'd', 'e', 'x'};
  static const uint8_t snapshot[] = {'k', 'v', 'b', '-', 's', 'n', 'a', 'p'};
  return kind == SealedKind::kIndex ? std::span<const uint8_t>(index) : std::span<const uint8_t>(snapshot);
}

}  // namespace

fs::path pack_path(const fs::path& repo, const std::string& pack) { return repo / "data" / pack.substr(0, 2) / pack; }

std::string random_hex(size_t bytes) {
  Key256 k = MasterKey::generate().mac;  // 32 random bytes
  return to_hex(std::span<const uint8_t>(k.data(), std::min(bytes, k.size())));
}

Result<BlobId> parse_blob_id(std::string_view hex) {
  BlobId id{};
  if (hex.size() != 64) return Error(Errc::kParse, "blob id \"" + std::string(hex.substr(0, 80)) + "\" is not 64 hex digits");
  auto nib = [](char c) -> int {
    return std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
  };
  for (size_t i = 0; i < 32; ++i) {
    int hi = nib(hex[2 * i]), lo = nib(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return Error(Errc::kParse, "blob id \"" + std::string(hex) + "\" is not lower-case hex");
    id[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return id;
}

Status write_sealed(const fs::path& path, const Key256& key, SealedKind kind, const json::value& doc) {
  auto sealed = seal(key, aad(kind), as_bytes(json::serialize(doc)));
  KVB_CHECK(make_directories(path.parent_path()));
  return write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(sealed.data()), sealed.size()), 0600);
}

Result<json::value> read_sealed(const fs::path& path, const Key256& key, SealedKind kind) {
  KVB_TRY(auto text, read_file(path));
  auto plain = open(key, aad(kind), as_bytes(text));
  if (!plain) return Error(Errc::kDamaged, path.string() + ": " + plain.error().message);
  boost::system::error_code ec;
  auto v = json::parse(std::string_view(reinterpret_cast<const char*>(plain->data()), plain->size()), ec);
  if (ec || !v.is_object()) return Error(Errc::kDamaged, path.string() + ": not a JSON object");
  return v;
}

Status remove_durably(const fs::path& path) {
  std::error_code ec;
  fs::remove(path, ec);
  if (ec) return Error(Errc::kIo, "cannot remove " + path.string() + ": " + ec.message());
  return sync_directory(path.parent_path());
}

Result<std::string> write_pack_file(const fs::path& repo, std::span<const uint8_t> bytes) {
  std::string name = pack_id(bytes);
  auto path = pack_path(repo, name);
  KVB_CHECK(make_directories(path.parent_path()));
  KVB_CHECK(write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), 0600, false));
  return name;
}

std::chrono::system_clock::time_point modification_time(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return std::chrono::system_clock::time_point(std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec));
}

Result<std::vector<PackFile>> list_pack_files(const fs::path& repo, std::vector<fs::path>* temporaries) {
  std::vector<PackFile> out;
  std::error_code ec;
  if (!fs::exists(repo / "data", ec)) return out;
  for (auto it = fs::recursive_directory_iterator(repo / "data", ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    if (is_temporary(it->path())) {
      if (temporaries) temporaries->push_back(it->path());
      continue;
    }
    out.push_back(PackFile{it->path().filename().string(), it->path(), it->file_size(), modification_time(it->path())});
  }
  if (ec) return Error(Errc::kIo, "cannot list " + (repo / "data").string() + ": " + ec.message());
  std::sort(out.begin(), out.end(), [](const PackFile& a, const PackFile& b) { return a.name < b.name; });
  return out;
}

bool is_temporary(const fs::path& path) { return path.filename().string().find(".tmp-") != std::string::npos; }

}  // namespace kvb::repo
