// The on-disk blob (docs/repository.md, "Blobs"):
//   nonce | AES-256-GCM(flags | payload) | tag, with the blob id as additional data.
// flags bit 0: payload is zstd-compressed.
//
// Invariants: decode_blob() returns exactly the plaintext that encode_blob()
// was given for that id, or an error naming what is wrong (tampered, sealed
// for another id, not decompressible, plaintext not matching its id); never
// other bytes. The last check (the plaintext's HMAC against its id) guards
// against a writer that sealed other bytes than it hashed; a caller that
// checks the bytes otherwise (a restore against the image map:
// repo/region_check.h) may skip it, and stays protected from everything
// else by the tag, which binds the ciphertext to its id.
#pragma once

#include "repo/crypto.h"

#include <span>
#include <vector>

namespace kvb::repo {

struct EncodedBlob {
  BlobId id{};
  std::vector<uint8_t> bytes;  // as stored in a pack
  size_t plaintext_size = 0;
  bool compressed = false;
};

// zstd's level 2: on binaries 1.4x the speed of level 3 for ~3% more bytes,
// and ~4% fewer bytes than level 1 (docs/repository.md, "Blobs"); 0 stores
// the plaintext as it is.
inline constexpr int kDefaultCompressionLevel = 2;

// Compresses at `level` unless a sample shows the data does not compress.
EncodedBlob encode_blob(const MasterKey& key, std::span<const uint8_t> plaintext, int level = kDefaultCompressionLevel);
// The same, for a caller that already has the id (blob_id(key, plaintext)).
EncodedBlob encode_blob(const MasterKey& key, const BlobId& id, std::span<const uint8_t> plaintext, int level = kDefaultCompressionLevel);
enum class IdCheck { kRecompute, kSkip };
Result<std::vector<uint8_t>> decode_blob(const MasterKey& key, const BlobId& id, std::span<const uint8_t> stored,
                                         IdCheck id_check = IdCheck::kRecompute);

// True when every byte is zero (such chunks are recorded, not stored).
bool all_zero(std::span<const uint8_t> data);

}  // namespace kvb::repo
