// S3Lock: the repository lock on an object store, where there is no flock
// and no atomic rename: lock objects with a holder, a time and an expiry, as
// restic has them (docs/location.md, "Locks").
//
//   acquire: write our own lock object <prefix>locks/<random id> (with
//            If-None-Match: *), then list every lock object; a conflict
//            (exclusive: any other live lock; shared: any other live
//            exclusive one) removes ours again and retries until `wait` is
//            spent. Both contenders of a race see each other and back off,
//            so two holders never both succeed.
//   hold:    a thread rewrites our object every `refresh` with a new expiry.
//   stale:   a lock object past its expiry (plus the clock skew allowance),
//            or one of a process on this host that no longer runs, is
//            ignored and removed by whoever meets it.
//   release: our object is deleted.
//
// Invariants: the protocol needs strongly consistent listing (AWS since
// 2020, RGW); still_held() fails once our object vanished (someone broke the
// lock) or could not be refreshed within its expiry, so a put never
// reports success on a lock it may have lost.
#pragma once

#include "location/location.h"
#include "location/s3/client.h"
#include "location/s3/s3_location.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace kvb::location::s3 {

class S3Lock : public Lock {
 public:
  static Result<std::unique_ptr<Lock>> acquire(std::shared_ptr<Client> client, std::string prefix, std::string where, LockMode mode,
                                               std::chrono::milliseconds wait, LockTimings timings);
  ~S3Lock() override;
  Status still_held() const override;

 private:
  S3Lock(std::shared_ptr<Client> client, std::string key, std::string where, LockMode mode, LockTimings timings);
  std::string body(std::chrono::system_clock::time_point now) const;
  void refresh_loop();

  std::shared_ptr<Client> client_;
  std::string key_, where_;
  LockMode mode_;
  LockTimings timings_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool lost_ = false;
  std::chrono::steady_clock::time_point refreshed_;
  std::thread refresher_;
};

}  // namespace kvb::location::s3
