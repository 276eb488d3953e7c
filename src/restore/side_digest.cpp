#include "restore/side_digest.h"

#include "common/hex.h"

#include <openssl/evp.h>

namespace kvb::restore {

SideDigest::SideDigest() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
  EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr);
  thread_ = std::thread([this] { run(); });
}

SideDigest::~SideDigest() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void SideDigest::begin(std::span<const uint8_t> bytes) {
  {
    std::lock_guard lk(mu_);
    range_ = bytes;
    pending_ = true;
  }
  cv_.notify_all();
}

void SideDigest::end() {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return !pending_; });
}

std::string SideDigest::hex() {
  end();
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx_.get(), md, &len);
  return hex_encode({md, len});
}

void SideDigest::run() {
  std::unique_lock lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return pending_ || stopping_; });
    if (!pending_) return;  // stopping, nothing left
    auto range = range_;
    lk.unlock();
    EVP_DigestUpdate(ctx_.get(), range.data(), range.size());
    lk.lock();
    pending_ = false;
    cv_.notify_all();
  }
}

}  // namespace kvb::restore
