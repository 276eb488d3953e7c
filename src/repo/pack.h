// Packs (docs/repository.md, "Packs"): many stored blobs, then a sealed
// trailer listing them, then the trailer's length (uint32 little-endian).
// A pack describes itself, so the index can always be rebuilt from packs.
//
// Invariants: read_pack_trailer() returns the entries a PackWriter wrote, or
// an error naming what is wrong (too short, trailer length out of range,
// trailer not authentic, entries outside the pack); never wrong entries.
#pragma once

#include "repo/blob.h"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace kvb::repo {

enum class BlobType : uint8_t { kData = 0, kTree = 1 };

struct PackEntry {
  BlobType type = BlobType::kData;
  BlobId id{};
  uint64_t offset = 0;
  uint32_t length = 0;          // stored bytes
  uint32_t plaintext_size = 0;
};

class PackWriter {
 public:
  // `expected`: the pack size the caller closes at; the buffer is allocated
  // once at about that size (no doubling past it).
  explicit PackWriter(size_t expected = 0) : expected_(expected) {}
  void add(const EncodedBlob& blob, BlobType type = BlobType::kData);
  size_t size() const { return bytes_.size(); }
  size_t count() const { return entries_.size(); }
  // The whole pack file. The writer is empty afterwards.
  std::vector<uint8_t> finish(const MasterKey& key);
  // Hands back the buffer of a pack finish() returned, once written: the next
  // pack is built in it (its pages already mapped) instead of in fresh memory.
  void reuse(std::vector<uint8_t> storage);
  const std::vector<PackEntry>& entries() const { return entries_; }

 private:
  size_t expected_ = 0;
  std::vector<uint8_t> bytes_;
  std::vector<PackEntry> entries_;
};

// The pack id: SHA-256 of the pack file, in hex.
std::string pack_id(std::span<const uint8_t> pack);

Result<std::vector<PackEntry>> read_pack_trailer(const MasterKey& key, std::span<const uint8_t> pack, const std::string& name);

}  // namespace kvb::repo
