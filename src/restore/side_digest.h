// SideDigest: the SHA-256 of a stream of byte ranges computed on a thread of
// its own while the caller does something else with the same bytes (the
// uploader sends them: restore/upload.h). Hashing and sending a range then
// take max(hash, send) instead of their sum on the thread that feeds the
// upload (docs/restore.md "Where the time goes": the hash was a third of
// that thread's time).
//
// Use: begin(range); ...use the range...; end(); the range must stay valid
// and unchanged until end() returns. Ranges are hashed in the order given.
// hex() after the last end(). No copy of the bytes is made.
// Threads: begin/end/hex from one thread; the hashing thread is joined by the
// destructor.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>

typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace kvb::restore {

class SideDigest {
 public:
  SideDigest();
  ~SideDigest();
  SideDigest(const SideDigest&) = delete;
  SideDigest& operator=(const SideDigest&) = delete;

  void begin(std::span<const uint8_t> bytes);  // after the previous end()
  void end();                                  // waits until the range is hashed
  std::string hex();                           // the digest of every range, lowercase hex

 private:
  void run();

  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::span<const uint8_t> range_;
  bool pending_ = false, stopping_ = false;
  std::thread thread_;
};

}  // namespace kvb::restore
