// A location whose record write (or sync) fails as a full or broken disk
// would, or whose run lock is lost after its first check (as an S3 lock whose
// refreshes failed past its expiry, or a lock file someone deleted): for the
// record-write cells of the fault matrix and the adversarial tests.
// Everything else goes to the wrapped location.
#pragma once

#include "location/location.h"

#include <atomic>
#include <memory>

namespace kvb::testing {

enum class StorageFault { kNone, kFirstRecordWrite, kFinalRecordWrite, kSync, kRunLockLost };

// The inner lock, held for its first still_held() check and lost from then on.
class LosingLock : public location::Lock {
 public:
  explicit LosingLock(std::unique_ptr<location::Lock> inner) : inner_(std::move(inner)) {}
  Status still_held() const override {
    if (checks_++ == 0) return inner_->still_held();
    return Error(Errc::kConflict, "the lock could not be refreshed for 30 s (test fault)");
  }

 private:
  std::unique_ptr<location::Lock> inner_;
  mutable std::atomic<int> checks_{0};
};

class FailingLocation : public location::Location {
 public:
  FailingLocation(location::Location& inner, StorageFault fault) : inner_(inner), fault_(fault) {}
  std::string describe() const override { return inner_.describe(); }
  Status put(const std::string& path, std::string_view data, bool secret) override {
    if (path.ends_with("/backup.json")) {
      ++record_writes_;
      if ((fault_ == StorageFault::kFirstRecordWrite && record_writes_ == 1) ||
          (fault_ == StorageFault::kFinalRecordWrite && record_writes_ == 2)) {
        return Error(Errc::kIo, "cannot write " + path + ": No space left on device");
      }
    }
    return inner_.put(path, data, secret);
  }
  Status put_deferred(const std::string& path, std::string_view data, bool secret) override {
    return inner_.put_deferred(path, data, secret);
  }
  Status sync() override {
    if (fault_ == StorageFault::kSync) return Error(Errc::kIo, "syncfs: Input/output error");
    return inner_.sync();
  }
  Result<std::string> get(const std::string& path) const override { return inner_.get(path); }
  bool exists(const std::string& path) const override { return inner_.exists(path); }
  Result<std::vector<std::string>> list(const std::string& dir) const override { return inner_.list(dir); }
  Status remove(const std::string& path) override { return inner_.remove(path); }
  std::optional<std::filesystem::path> local_root() const override { return inner_.local_root(); }
  Result<std::unique_ptr<location::Lock>> lock_path(const std::string& path, std::chrono::milliseconds wait) override {
    auto lock = inner_.lock_path(path, wait);
    if (!lock || fault_ != StorageFault::kRunLockLost) return lock;
    return std::unique_ptr<location::Lock>(std::make_unique<LosingLock>(std::move(*lock)));
  }
  Status create(const std::string& path, std::string_view data) override { return inner_.create(path, data); }

 private:
  location::Location& inner_;
  StorageFault fault_;
  int record_writes_ = 0;
};

}  // namespace kvb::testing
