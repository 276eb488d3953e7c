#include "repo/layout.h"

#include "repo/pack.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace kvb::repo {
namespace json = boost::json;

namespace {

std::span<const uint8_t> aad(SealedKind kind) {
  static const uint8_t index[] = {'k', 'v', 'b', '-', 'i', 'n', 'd', 'e', 'x'};
  static const uint8_t snapshot[] = {'k', 'v', 'b', '-', 's', 'n', 'a', 'p'};
  return kind == SealedKind::kIndex ? std::span<const uint8_t>(index) : std::span<const uint8_t>(snapshot);
}

}  // namespace

std::string pack_path(const std::string& pack) { return "data/" + pack.substr(0, 2) + "/" + pack; }

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

Status write_sealed(location::Location& loc, const std::string& path, const Key256& key, SealedKind kind, const json::value& doc) {
  auto sealed = seal(key, aad(kind), as_bytes(json::serialize(doc)));
  return loc.put(path, as_chars(sealed));
}

Result<json::value> read_sealed(const location::Location& loc, const std::string& path, const Key256& key, SealedKind kind) {
  KVB_TRY(auto text, loc.get(path));
  const std::string where = loc.describe() + "/" + path;
  auto plain = open(key, aad(kind), as_bytes(text));
  if (!plain) return Error(Errc::kDamaged, where + ": " + plain.error().message);
  boost::system::error_code ec;
  auto v = json::parse(as_chars(*plain), ec);
  if (ec || !v.is_object()) return Error(Errc::kDamaged, where + ": not a JSON object");
  return v;
}

Result<std::string> write_pack_file(location::Location& loc, std::span<const uint8_t> bytes) {
  std::string name = pack_id(bytes);
  KVB_CHECK(loc.put_deferred(pack_path(name), as_chars(bytes)));
  return name;
}

Result<std::vector<PackFile>> list_pack_files(const location::Location& loc, std::vector<location::FileInfo>* temporaries) {
  KVB_TRY(auto files, loc.walk("data"));
  std::vector<PackFile> out;
  out.reserve(files.size());
  for (auto& f : files) {
    if (f.temporary) {
      if (temporaries) temporaries->push_back(f);
      continue;
    }
    std::string name = f.path.substr(f.path.rfind('/') + 1);
    out.push_back(PackFile{name, std::move(f.path), f.size, f.mtime});
  }
  std::sort(out.begin(), out.end(), [](const PackFile& a, const PackFile& b) { return a.name < b.name; });
  return out;
}

}  // namespace kvb::repo
