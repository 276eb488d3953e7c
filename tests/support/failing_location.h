// A location whose record write (or sync) fails as a full or broken disk
// would: for the record-write cells of the fault matrix and the adversarial
// tests. Everything else goes to the wrapped location.
#pragma once

#include "location/location.h"

namespace kvb::testing {

enum class StorageFault { kNone, kFirstRecordWrite, kFinalRecordWrite, kSync };

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
    return inner_.lock_path(path, wait);
  }
  Status create(const std::string& path, std::string_view data) override { return inner_.create(path, data); }

 private:
  location::Location& inner_;
  StorageFault fault_;
  int record_writes_ = 0;
};

}  // namespace kvb::testing
