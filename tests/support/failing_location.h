// A location whose record write (or sync) fails as a full or broken disk
// would, or whose run lock is lost after its first check (as an S3 lock whose
// refreshes failed past its expiry, or a lock file someone deleted): for the
// record-write cells of the fault matrix and the adversarial tests.
// Everything else goes to the wrapped location.
//
// FullDiskLocation: a disk of `capacity` bytes under a location (the
// repository of the copy-data cells): once the bytes written through it would
// exceed the capacity, every write fails with ENOSPC's message, as a small
// file system would (a tmpfs needs root to mount; this needs nothing).
// Thread-safe (the repository's put writes from several threads).
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

class FullDiskLocation : public location::Location {
 public:
  FullDiskLocation(std::shared_ptr<location::Location> inner, uint64_t capacity) : inner_(std::move(inner)), capacity_(capacity) {}
  std::string describe() const override { return inner_->describe(); }
  Status put(const std::string& path, std::string_view data, bool secret) override {
    KVB_CHECK(take(path, data.size()));
    return inner_->put(path, data, secret);
  }
  Status put_deferred(const std::string& path, std::string_view data, bool secret) override {
    KVB_CHECK(take(path, data.size()));
    return inner_->put_deferred(path, data, secret);
  }
  Status create(const std::string& path, std::string_view data) override {
    KVB_CHECK(take(path, data.size()));
    return inner_->create(path, data);
  }
  Status sync() override { return inner_->sync(); }
  Result<std::string> get(const std::string& path) const override { return inner_->get(path); }
  Result<std::string> read_range(const std::string& path, uint64_t offset, uint64_t length) const override {
    return inner_->read_range(path, offset, length);
  }
  Result<std::vector<location::FileInfo>> walk(const std::string& dir) const override { return inner_->walk(dir); }
  unsigned parallelism() const override { return inner_->parallelism(); }
  bool exists(const std::string& path) const override { return inner_->exists(path); }
  Result<std::vector<std::string>> list(const std::string& dir) const override { return inner_->list(dir); }
  Status remove(const std::string& path) override { return inner_->remove(path); }
  std::optional<std::filesystem::path> local_root() const override { return inner_->local_root(); }
  Result<std::unique_ptr<location::Lock>> lock_path(const std::string& path, std::chrono::milliseconds wait) override {
    return inner_->lock_path(path, wait);
  }
  Result<std::unique_ptr<location::Lock>> lock(location::LockMode mode, std::chrono::milliseconds wait) override {
    return inner_->lock(mode, wait);
  }
  uint64_t refused() const { return refused_; }

 private:
  Status take(const std::string& path, size_t n) {
    uint64_t before = used_.fetch_add(n);
    if (before + n > capacity_) {
      used_.fetch_sub(n);
      ++refused_;
      return Error(Errc::kIo, "cannot write " + path + ": No space left on device");
    }
    return ok();
  }
  std::shared_ptr<location::Location> inner_;
  uint64_t capacity_;
  std::atomic<uint64_t> used_{0};
  std::atomic<uint64_t> refused_{0};
};

}  // namespace kvb::testing
