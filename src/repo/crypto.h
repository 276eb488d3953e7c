// Repository cryptography (docs/repository.md, "Keys" and "Blobs"): the
// master key, keyed blob ids, AES-256-GCM sealing, and the master key wrapped
// under a password with scrypt. All on OpenSSL 3.
//
// Invariants: a sealed message opens only with the same key and the same
// additional data, and any change to it is an error, never wrong plaintext.
// Keys and passwords never appear in errors.
#pragma once

#include "common/error.h"
#include "common/secret.h"

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace kvb::repo {

using Key256 = std::array<uint8_t, 32>;
using BlobId = std::array<uint8_t, 32>;

struct MasterKey {
  Key256 encryption{};  // AES-256-GCM
  Key256 mac{};         // HMAC-SHA-256 blob ids
  Key256 chunker{};     // the chunker's Gear table seed
  uint64_t chunker_seed() const;
  static MasterKey generate();  // from the OS's random source
};

BlobId blob_id(const MasterKey& key, std::span<const uint8_t> plaintext);
std::string to_hex(std::span<const uint8_t> bytes);

inline constexpr size_t kNonceSize = 12;
inline constexpr size_t kTagSize = 16;
inline constexpr size_t kSealOverhead = kNonceSize + kTagSize;

// nonce | ciphertext | tag, with a random nonce.
std::vector<uint8_t> seal(const Key256& key, std::span<const uint8_t> aad, std::span<const uint8_t> plaintext);
// The same for the plaintext head || body, without joining them first.
std::vector<uint8_t> seal(const Key256& key, std::span<const uint8_t> aad, std::span<const uint8_t> head, std::span<const uint8_t> body);
// The plaintext, or an error if the message was modified, truncated, or sealed
// with another key or other additional data.
Result<std::vector<uint8_t>> open(const Key256& key, std::span<const uint8_t> aad, std::span<const uint8_t> sealed);

struct KdfParams {
  uint64_t n = uint64_t{1} << 15;
  uint32_t r = 8;
  uint32_t p = 1;
  std::array<uint8_t, 16> salt{};
};

// The master key sealed under scrypt(password); params.salt is filled with fresh random bytes.
std::vector<uint8_t> wrap_master_key(const MasterKey& key, const Secret& password, KdfParams& params);
Result<MasterKey> unwrap_master_key(std::span<const uint8_t> wrapped, const Secret& password, const KdfParams& params);

}  // namespace kvb::repo
