#include "repo/crypto.h"

#include "common/hex.h"
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstring>
#include <memory>
#include <stdexcept>

namespace kvb::repo {

namespace {

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

CipherCtx new_ctx() {
  CipherCtx c(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  if (!c) throw std::bad_alloc();
  return c;
}

void random_bytes(uint8_t* out, size_t n) {
  if (RAND_bytes(out, static_cast<int>(n)) != 1) throw std::runtime_error("the OS random source failed");
}

Error auth_failed() {
  return Error(Errc::kDamaged, "authentication failed: the data was modified, truncated, or sealed with another key");
}

}  // namespace

uint64_t MasterKey::chunker_seed() const {
  uint64_t s = 0;
  std::memcpy(&s, chunker.data(), sizeof s);
  return s;
}

MasterKey MasterKey::generate() {
  MasterKey k;
  random_bytes(k.encryption.data(), k.encryption.size());
  random_bytes(k.mac.data(), k.mac.size());
  random_bytes(k.chunker.data(), k.chunker.size());
  return k;
}

BlobId blob_id(const MasterKey& key, std::span<const uint8_t> plaintext) {
  BlobId id{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.mac.data(), static_cast<int>(key.mac.size()), plaintext.data(), plaintext.size(), id.data(), &len);
  return id;
}

std::string to_hex(std::span<const uint8_t> bytes) { return hex_encode(bytes); }

std::vector<uint8_t> seal(const Key256& key, std::span<const uint8_t> aad, std::span<const uint8_t> plaintext) {
  return seal(key, aad, {}, plaintext);
}

std::vector<uint8_t> seal(const Key256& key, std::span<const uint8_t> aad, std::span<const uint8_t> head, std::span<const uint8_t> body) {
  const size_t n = head.size() + body.size();
  std::vector<uint8_t> out;
  out.reserve(kNonceSize + n + kTagSize);
  out.resize(kNonceSize);
  random_bytes(out.data(), kNonceSize);
  out.resize(kNonceSize + n + kTagSize);  // ciphertext and tag are written below
  auto ctx = new_ctx();
  int len = 0, len2 = 0;
  auto update = [&](std::span<const uint8_t> part, uint8_t* dst, int& written) {
    written = 0;
    return part.empty() || EVP_EncryptUpdate(ctx.get(), dst, &written, part.data(), static_cast<int>(part.size())) == 1;
  };
  int tail = 0;
  bool ok = EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), out.data()) == 1 &&
            (aad.empty() || EVP_EncryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1) &&
            update(head, out.data() + kNonceSize, len) && update(body, out.data() + kNonceSize + len, len2) &&
            EVP_EncryptFinal_ex(ctx.get(), out.data() + kNonceSize + len + len2, &tail) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize, out.data() + kNonceSize + n) == 1;
  if (!ok) throw std::runtime_error("AES-256-GCM encryption failed");
  return out;
}

Result<std::vector<uint8_t>> open(const Key256& key, std::span<const uint8_t> aad, std::span<const uint8_t> sealed) {
  if (sealed.size() < kSealOverhead) return auth_failed();
  size_t n = sealed.size() - kSealOverhead;
  std::vector<uint8_t> out(n);
  auto ctx = new_ctx();
  int len = 0;
  std::array<uint8_t, kTagSize> tag{};
  std::memcpy(tag.data(), sealed.data() + kNonceSize + n, kTagSize);
  bool ok = EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), sealed.data()) == 1 &&
            (aad.empty() || EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1) &&
            EVP_DecryptUpdate(ctx.get(), out.data(), &len, sealed.data() + kNonceSize, static_cast<int>(n)) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag.data()) == 1 &&
            EVP_DecryptFinal_ex(ctx.get(), out.data() + len, &len) == 1;
  if (!ok) return auth_failed();
  return out;
}

namespace {

Result<Key256> derive(const Secret& password, const KdfParams& p) {
  Key256 kek{};
  const std::string& pw = password.reveal();
  if (EVP_PBE_scrypt(pw.data(), pw.size(), p.salt.data(), p.salt.size(), p.n, p.r, p.p, 1ULL << 30, kek.data(), kek.size()) != 1) {
    return Error(Errc::kInvalidArgument, "scrypt failed: N=" + std::to_string(p.n) + " r=" + std::to_string(p.r) +
                                             " p=" + std::to_string(p.p) + " are not usable parameters");
  }
  return kek;
}

const uint8_t kWrapAad[] = {'k', 'v', 'b', 'a', 'c', 'k', 'u', 'p', '-', 'k', 'e', 'y'};

}  // namespace

std::vector<uint8_t> wrap_master_key(const MasterKey& key, const Secret& password, KdfParams& params) {
  random_bytes(params.salt.data(), params.salt.size());
  auto kek = derive(password, params);
  if (!kek) throw std::runtime_error(kek.error().message);
  std::vector<uint8_t> plain;
  for (const auto* part : {&key.encryption, &key.mac, &key.chunker}) plain.insert(plain.end(), part->begin(), part->end());
  auto sealed = seal(*kek, kWrapAad, plain);
  std::fill(plain.begin(), plain.end(), 0);
  return sealed;
}

Result<MasterKey> unwrap_master_key(std::span<const uint8_t> wrapped, const Secret& password, const KdfParams& params) {
  KVB_TRY(auto kek, derive(password, params));
  auto plain = open(kek, kWrapAad, wrapped);
  if (!plain || plain->size() != 96) return Error(Errc::kInvalidArgument, "wrong password, or a damaged key file");
  MasterKey k;
  std::memcpy(k.encryption.data(), plain->data(), 32);
  std::memcpy(k.mac.data(), plain->data() + 32, 32);
  std::memcpy(k.chunker.data(), plain->data() + 64, 32);
  std::fill(plain->begin(), plain->end(), 0);
  return k;
}

}  // namespace kvb::repo
