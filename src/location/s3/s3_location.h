// S3Location: a backup location or repository in an S3 bucket, under a
// prefix (docs/location.md).
//
//   <prefix>/<path>          every file a location holds is one object
//   <prefix>/locks/<id>      lock objects of the repository lock (s3_lock.h)
//   <prefix>/<path>/<id>     lock objects of the run lock named <path>
//                            (lock_path: a backup's journal/<name>.lock/)
//
// Invariants: an object is written whole by one PutObject (or a multipart
// upload completed only once every part is in), so a reader sees a whole
// file or none and a failed write leaves the old object (or nothing);
// put() is durable when it returns (S3 acknowledges after storing), so
// sync() has nothing to do; listing is strongly consistent on AWS and RGW,
// which the lock protocol needs. Nothing here knows it is a repository.
#pragma once

#include "location/location.h"
#include "location/s3/client.h"

#include <chrono>
#include <memory>

namespace kvb::location::s3 {

// How lock objects age: rewritten every `refresh`, valid until `expiry` after
// the last rewrite; another process treats it as stale `skew` later still
// (clocks differ). A holder that has not refreshed within `expiry` knows its
// lock may be gone (still_held() fails).
struct LockTimings {
  std::chrono::milliseconds refresh{120'000};
  std::chrono::milliseconds expiry{900'000};
  std::chrono::milliseconds skew{300'000};
};

struct S3Options {
  ClientOptions client;
  LockTimings lock;
  unsigned parallelism = 4;  // concurrent uploads a put may run
  Getenv env = process_environment();
};

Result<std::unique_ptr<Location>> open_s3(const std::string& url, OpenMode mode, const S3Options& options = {});

}  // namespace kvb::location::s3
