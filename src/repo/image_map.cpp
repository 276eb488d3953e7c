#include "repo/image_map.h"

#include "common/base64.h"
#include "repo/blob.h"
#include "repo/layout.h"
#include "repo/snapshot.h"

#include <boost/json.hpp>
#include <openssl/hmac.h>

#include <xxhash.h>

#include <algorithm>
#include <cstring>

namespace kvb::repo {
namespace json = boost::json;

namespace {

constexpr size_t kEntrySize = 16 + 8;  // content fingerprint, layout hash (little-endian)
constexpr const char* kFingerprintName = "xxh3-128";

const std::vector<uint8_t>& zero_region() {
  static const std::vector<uint8_t> zeros(kRegionSize, 0);
  return zeros;
}

void put_le64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t get_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

uint64_t map_seed(const MasterKey& key) {
  static const char label[] = "kvbackup image map seed";
  uint8_t out[32];
  unsigned len = 0;
  HMAC(EVP_sha256(), key.mac.data(), static_cast<int>(key.mac.size()), reinterpret_cast<const uint8_t*>(label), sizeof label - 1, out, &len);
  return get_le64(out);
}

RegionHasher::RegionHasher(uint64_t seed) : seed_(seed), state_(XXH3_createState()) {
  XXH3_128bits_reset_withSeed(static_cast<XXH3_state_t*>(state_), seed_);
}

RegionHasher::~RegionHasher() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }

void RegionHasher::data(std::span<const uint8_t> bytes) {
  XXH3_128bits_update(static_cast<XXH3_state_t*>(state_), bytes.data(), bytes.size());
  at_ += bytes.size();
}

void RegionHasher::hole(uint64_t length) {
  holes_.push_back(at_);
  holes_.push_back(length);
  for (uint64_t left = length; left > 0;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(left, zero_region().size()));
    XXH3_128bits_update(static_cast<XXH3_state_t*>(state_), zero_region().data(), n);
    left -= n;
  }
  at_ += length;
}

RegionPrint RegionHasher::finish() {
  RegionPrint p;
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits_digest(static_cast<XXH3_state_t*>(state_)));
  std::memcpy(p.content.data(), c.digest, p.content.size());
  if (!holes_.empty()) {
    std::vector<uint8_t> le(holes_.size() * 8);
    for (size_t i = 0; i < holes_.size(); ++i) put_le64(le.data() + 8 * i, holes_[i]);
    p.layout = XXH3_64bits_withSeed(le.data(), le.size(), seed_);
    if (p.layout == 0) p.layout = 1;  // 0 means "no holes"
  }
  holes_.clear();
  at_ = 0;
  XXH3_128bits_reset_withSeed(static_cast<XXH3_state_t*>(state_), seed_);
  return p;
}

json::value map_to_json(const ImageMap& map) {
  std::string raw(map.regions.size() * kEntrySize, '\0');
  auto* out = reinterpret_cast<uint8_t*>(raw.data());
  for (const auto& r : map.regions) {
    std::memcpy(out, r.content.data(), 16);
    put_le64(out + 16, r.layout);
    out += kEntrySize;
  }
  return json::object{{"version", kImageMapVersion},
                      {"regionSize", map.region_size},
                      {"fingerprint", kFingerprintName},
                      {"regions", base64_encode(raw)}};
}

Result<ImageMap> map_from_json(const json::value& v, uint64_t image_size) {
  auto bad = [](const std::string& why) { return Error(Errc::kDamaged, "image map: " + why); };
  if (!v.is_object()) return bad("not an object");
  const auto& o = v.as_object();
  const auto* version = o.if_contains("version");
  if (!version || !version->is_int64() || version->as_int64() != kImageMapVersion) {
    return bad("field \"version\": this kvbackup reads version " + std::to_string(kImageMapVersion) + " only");
  }
  const auto* fp = o.if_contains("fingerprint");
  if (!fp || !fp->is_string() || fp->as_string() != kFingerprintName) return bad("field \"fingerprint\" is not \"xxh3-128\"");
  ImageMap m;
  const auto* rs = o.if_contains("regionSize");
  boost::system::error_code ec;
  if (rs) m.region_size = rs->to_number<uint64_t>(ec);
  if (!rs || ec || m.region_size != kRegionSize) return bad("field \"regionSize\" is not " + std::to_string(kRegionSize));
  const auto* regions = o.if_contains("regions");
  if (!regions || !regions->is_string()) return bad("field \"regions\" is missing");
  auto raw = base64_decode(regions->as_string());
  if (!raw || raw->size() % kEntrySize != 0) return bad("field \"regions\" is not base64 of 24-byte entries");
  const uint64_t expected = (image_size + m.region_size - 1) / m.region_size;
  if (raw->size() / kEntrySize != expected) {
    return bad("field \"regions\" has " + std::to_string(raw->size() / kEntrySize) + " regions, the image needs " + std::to_string(expected));
  }
  m.regions.resize(expected);
  const auto* in = reinterpret_cast<const uint8_t*>(raw->data());
  for (auto& r : m.regions) {
    std::memcpy(r.content.data(), in, 16);
    r.layout = get_le64(in + 16);
    in += kEntrySize;
  }
  return m;
}

Result<std::shared_ptr<const std::vector<uint8_t>>> BlobCache::get(const location::Location& loc, const Index& index, const MasterKey& key,
                                                                   const BlobId& id) {
  for (const auto& [have, bytes] : recent_) {
    if (have == id) return bytes;
  }
  const auto* at = index.find(id);
  if (!at) return Error(Errc::kNotFound, "blob " + to_hex(id) + " is in no indexed pack");
  const auto& pack = index.pack_name(at->pack);
  auto stored = loc.read_range(pack_path(pack), at->offset, at->length);
  if (!stored) return Error(stored.error().code, "pack " + pack + ": " + stored.error().message);
  auto plain = decode_blob(key, id, as_bytes(*stored));
  if (!plain) return Error(plain.error().code, "pack " + pack + ": " + plain.error().message);
  auto shared = std::make_shared<const std::vector<uint8_t>>(std::move(*plain));
  if (recent_.size() >= 4) recent_.erase(recent_.begin());
  recent_.emplace_back(id, shared);
  return shared;
}

Result<std::vector<uint8_t>> read_image_range(const location::Location& loc, const Index& index, const MasterKey& key,
                                              std::span<const Extent> extents, uint64_t offset, uint64_t length, BlobCache& cache) {
  std::vector<uint8_t> out(length, 0);
  const uint64_t end = offset + length;
  for (const auto& e : covering_extents(extents, offset, length)) {
    if (!e.blob) continue;  // zeros
    KVB_TRY(auto bytes, cache.get(loc, index, key, *e.blob));
    if (bytes->size() != e.length) {
      return Error(Errc::kDamaged, "blob " + to_hex(*e.blob) + " holds " + std::to_string(bytes->size()) + " bytes, its extent at offset " +
                                       std::to_string(e.offset) + " says " + std::to_string(e.length));
    }
    uint64_t s = std::max(offset, e.offset), t = std::min(end, e.offset + e.length);
    std::memcpy(out.data() + (s - offset), bytes->data() + (s - e.offset), t - s);
  }
  return out;
}

std::vector<Extent> covering_extents(std::span<const Extent> extents, uint64_t offset, uint64_t length) {
  std::vector<Extent> out;
  const uint64_t end = offset + length;
  // The first extent that ends after `offset`.
  auto it = std::upper_bound(extents.begin(), extents.end(), offset, [](uint64_t at, const Extent& x) { return at < x.offset; });
  if (it != extents.begin()) --it;
  for (; it != extents.end() && it->offset < end; ++it) {
    if (it->offset + it->length <= offset) continue;
    if (it->blob) {
      out.push_back(*it);
    } else {
      uint64_t s = std::max(offset, it->offset), e = std::min(end, it->offset + it->length);
      append_extent(out, Extent{s, e - s, std::nullopt});
    }
  }
  return out;
}

}  // namespace kvb::repo
