#include "repo/blob.h"

#include <zstd.h>

#include <algorithm>
#include <cstring>

namespace kvb::repo {

namespace {

constexpr uint8_t kCompressed = 1;
constexpr size_t kSample = 4096;

// The cheap incompressibility test: a 4 KiB sample at level 1 must shrink by 3%.
bool worth_compressing(std::span<const uint8_t> data) {
  if (data.size() < 64) return false;
  size_t n = std::min(data.size(), kSample);
  std::vector<uint8_t> out(ZSTD_compressBound(n));
  size_t r = ZSTD_compress(out.data(), out.size(), data.data(), n, 1);
  return !ZSTD_isError(r) && r * 100 < n * 97;
}

}  // namespace

bool all_zero(std::span<const uint8_t> data) {
  static const uint8_t zeros[4096] = {};
  for (size_t off = 0; off < data.size(); off += sizeof zeros) {
    size_t n = std::min(sizeof zeros, data.size() - off);
    if (std::memcmp(data.data() + off, zeros, n) != 0) return false;
  }
  return true;
}

EncodedBlob encode_blob(const MasterKey& key, std::span<const uint8_t> plaintext) {
  return encode_blob(key, blob_id(key, plaintext), plaintext);
}

EncodedBlob encode_blob(const MasterKey& key, const BlobId& id, std::span<const uint8_t> plaintext) {
  EncodedBlob b;
  b.id = id;
  b.plaintext_size = plaintext.size();
  std::vector<uint8_t> framed;
  if (worth_compressing(plaintext)) {
    framed.resize(1 + ZSTD_compressBound(plaintext.size()));
    size_t r = ZSTD_compress(framed.data() + 1, framed.size() - 1, plaintext.data(), plaintext.size(), 3);
    if (!ZSTD_isError(r) && r < plaintext.size()) {
      framed[0] = kCompressed;
      framed.resize(1 + r);
      b.compressed = true;
    }
  }
  if (!b.compressed) {
    framed.resize(1 + plaintext.size());
    framed[0] = 0;
    if (!plaintext.empty()) std::memcpy(framed.data() + 1, plaintext.data(), plaintext.size());
  }
  b.bytes = seal(key.encryption, b.id, framed);
  return b;
}

Result<std::vector<uint8_t>> decode_blob(const MasterKey& key, const BlobId& id, std::span<const uint8_t> stored) {
  auto framed = open(key.encryption, id, stored);
  if (!framed) return Error(framed.error().code, "blob " + to_hex(id) + ": " + framed.error().message);
  if (framed->empty()) return Error(Errc::kParse, "blob " + to_hex(id) + ": empty frame");
  uint8_t flags = (*framed)[0];
  std::vector<uint8_t> plain;
  if (flags & kCompressed) {
    unsigned long long size = ZSTD_getFrameContentSize(framed->data() + 1, framed->size() - 1);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > (64ULL << 20)) {
      return Error(Errc::kParse, "blob " + to_hex(id) + ": not a zstd frame of a known size");
    }
    plain.resize(size);
    size_t r = ZSTD_decompress(plain.data(), plain.size(), framed->data() + 1, framed->size() - 1);
    if (ZSTD_isError(r) || r != size) return Error(Errc::kParse, "blob " + to_hex(id) + ": zstd: decompression failed");
  } else {
    plain.assign(framed->begin() + 1, framed->end());
  }
  if (blob_id(key, plain) != id) return Error(Errc::kParse, "blob " + to_hex(id) + ": plaintext does not match its id");
  return plain;
}

}  // namespace kvb::repo
