#include "repo/blob.h"

#include <zstd.h>

#include <algorithm>
#include <cstring>

namespace kvb::repo {

namespace {

constexpr uint8_t kCompressed = 1;
constexpr size_t kSample = 4096;

// One compression and one decompression context per thread, reused: zstd's
// one-shot calls would set up a context (about a megabyte) for every blob.
struct ZstdContexts {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_DCtx* d = ZSTD_createDCtx();
  std::vector<uint8_t> out;  // compressed bytes, grown once
  ~ZstdContexts() {
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
  }
};

ZstdContexts& zstd() {
  thread_local ZstdContexts contexts;
  return contexts;
}

// The cheap incompressibility test: a 4 KiB sample at level 1 must shrink by
// 3%. The sample is four 1 KiB slices spread over the blob (its start, a
// quarter, the middle, three quarters), so a chunk that starts with random
// bytes (a compressed file's header, a written block) and goes on with text
// or zeros is still compressed.
bool worth_compressing(std::span<const uint8_t> data) {
  if (data.size() < 64) return false;
  uint8_t sample[kSample];
  size_t n = std::min(data.size(), kSample);
  if (data.size() <= kSample) {
    std::memcpy(sample, data.data(), n);
  } else {
    constexpr size_t kSlice = kSample / 4;
    for (size_t i = 0; i < 4; ++i) std::memcpy(sample + i * kSlice, data.data() + (data.size() - kSlice) * i / 4, kSlice);
  }
  uint8_t out[ZSTD_COMPRESSBOUND(kSample)];
  size_t r = ZSTD_compressCCtx(zstd().c, out, sizeof out, sample, n, 1);
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

EncodedBlob encode_blob(const MasterKey& key, std::span<const uint8_t> plaintext, int level) {
  return encode_blob(key, blob_id(key, plaintext), plaintext, level);
}

EncodedBlob encode_blob(const MasterKey& key, const BlobId& id, std::span<const uint8_t> plaintext, int level) {
  EncodedBlob b;
  b.id = id;
  b.plaintext_size = plaintext.size();
  const uint8_t raw_flags[1] = {0}, compressed_flags[1] = {kCompressed};
  if (level > 0 && worth_compressing(plaintext)) {
    auto& z = zstd();
    size_t bound = ZSTD_compressBound(plaintext.size());
    if (z.out.size() < bound) z.out.resize(bound);
    size_t r = ZSTD_compressCCtx(z.c, z.out.data(), z.out.size(), plaintext.data(), plaintext.size(), level);
    if (!ZSTD_isError(r) && r < plaintext.size()) {
      b.compressed = true;
      b.bytes = seal(key.encryption, b.id, compressed_flags, std::span<const uint8_t>(z.out.data(), r));
      return b;
    }
  }
  b.bytes = seal(key.encryption, b.id, raw_flags, plaintext);
  return b;
}

Result<std::vector<uint8_t>> decode_blob(const MasterKey& key, const BlobId& id, std::span<const uint8_t> stored, IdCheck id_check) {
  auto framed = open(key.encryption, id, stored);
  if (!framed) return Error(framed.error().code, "blob " + to_hex(id) + ": " + framed.error().message);
  if (framed->empty()) return Error(Errc::kDamaged, "blob " + to_hex(id) + ": empty frame");
  uint8_t flags = (*framed)[0];
  std::vector<uint8_t> plain;
  if (flags & kCompressed) {
    unsigned long long size = ZSTD_getFrameContentSize(framed->data() + 1, framed->size() - 1);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > (64ULL << 20)) {
      return Error(Errc::kDamaged, "blob " + to_hex(id) + ": not a zstd frame of a known size");
    }
    plain.resize(size);
    size_t r = ZSTD_decompressDCtx(zstd().d, plain.data(), plain.size(), framed->data() + 1, framed->size() - 1);
    if (ZSTD_isError(r) || r != size) return Error(Errc::kDamaged, "blob " + to_hex(id) + ": zstd: decompression failed");
  } else {
    framed->erase(framed->begin());
    plain = std::move(*framed);
  }
  if (id_check == IdCheck::kRecompute && blob_id(key, plain) != id) return Error(Errc::kDamaged, "blob " + to_hex(id) + ": plaintext does not match its id");
  return plain;
}

}  // namespace kvb::repo
