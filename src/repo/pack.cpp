#include "repo/pack.h"

#include <openssl/evp.h>

#include <cstring>

namespace kvb::repo {

namespace {

constexpr size_t kEntrySize = 1 + 32 + 8 + 4 + 4;
const uint8_t kTrailerAad[] = {'k', 'v', 'b', 'a', 'c', 'k', 'u', 'p', '-', 'p', 'a', 'c', 'k'};

template <class T>
void put_le(std::vector<uint8_t>& out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

template <class T>
T get_le(const uint8_t* p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(p[i]) << (8 * i);
  return v;
}

}  // namespace

void PackWriter::add(const EncodedBlob& blob, BlobType type) {
  // Room for the pack, one more blob (at most a 1 MiB chunk, sealed) and the trailer.
  if (bytes_.capacity() == 0 && expected_ > 0) bytes_.reserve(expected_ + (2 << 20));
  entries_.push_back(PackEntry{type, blob.id, bytes_.size(), static_cast<uint32_t>(blob.bytes.size()),
                               static_cast<uint32_t>(blob.plaintext_size)});
  bytes_.insert(bytes_.end(), blob.bytes.begin(), blob.bytes.end());
}

void PackWriter::reuse(std::vector<uint8_t> storage) {
  if (!bytes_.empty() || bytes_.capacity() >= storage.capacity()) return;
  storage.clear();
  bytes_ = std::move(storage);
}

std::vector<uint8_t> PackWriter::finish(const MasterKey& key) {
  std::vector<uint8_t> trailer;
  put_le<uint32_t>(trailer, static_cast<uint32_t>(entries_.size()));
  for (const auto& e : entries_) {
    trailer.push_back(static_cast<uint8_t>(e.type));
    trailer.insert(trailer.end(), e.id.begin(), e.id.end());
    put_le<uint64_t>(trailer, e.offset);
    put_le<uint32_t>(trailer, e.length);
    put_le<uint32_t>(trailer, e.plaintext_size);
  }
  auto sealed = seal(key.encryption, kTrailerAad, trailer);
  std::vector<uint8_t> out = std::move(bytes_);
  out.insert(out.end(), sealed.begin(), sealed.end());
  put_le<uint32_t>(out, static_cast<uint32_t>(sealed.size()));
  bytes_.clear();
  entries_.clear();
  return out;
}

std::string pack_id(std::span<const uint8_t> pack) {
  uint8_t digest[32];
  unsigned int len = 0;
  EVP_Digest(pack.data(), pack.size(), digest, &len, EVP_sha256(), nullptr);
  return to_hex(std::span<const uint8_t>(digest, len));
}

Result<std::vector<PackEntry>> read_pack_trailer(const MasterKey& key, std::span<const uint8_t> pack, const std::string& name) {
  auto bad = [&](const std::string& why) { return Error(Errc::kDamaged, "pack " + name + ": " + why); };
  if (pack.size() < 4 + kSealOverhead) return bad("truncated (" + std::to_string(pack.size()) + " bytes)");
  uint32_t tlen = get_le<uint32_t>(pack.data() + pack.size() - 4);
  if (tlen < kSealOverhead || tlen > pack.size() - 4) {
    return bad("trailer length " + std::to_string(tlen) + " does not fit the pack (truncated?)");
  }
  size_t tstart = pack.size() - 4 - tlen;
  auto plain = open(key.encryption, kTrailerAad, pack.subspan(tstart, tlen));
  if (!plain) return bad("trailer: " + plain.error().message);
  if (plain->size() < 4) return bad("trailer too short");
  uint32_t count = get_le<uint32_t>(plain->data());
  if (plain->size() != 4 + size_t{count} * kEntrySize) return bad("trailer size does not match its " + std::to_string(count) + " entries");
  std::vector<PackEntry> out;
  const uint8_t* p = plain->data() + 4;
  for (uint32_t i = 0; i < count; ++i, p += kEntrySize) {
    PackEntry e;
    if (p[0] > 1) return bad("entry " + std::to_string(i) + ": unknown blob type " + std::to_string(p[0]));
    e.type = static_cast<BlobType>(p[0]);
    std::memcpy(e.id.data(), p + 1, 32);
    e.offset = get_le<uint64_t>(p + 33);
    e.length = get_le<uint32_t>(p + 41);
    e.plaintext_size = get_le<uint32_t>(p + 45);
    if (e.offset > tstart || e.length > tstart - e.offset) {
      return bad("entry " + std::to_string(i) + " (" + to_hex(e.id) + ") lies outside the pack's blobs");
    }
    out.push_back(e);
  }
  return out;
}

}  // namespace kvb::repo
