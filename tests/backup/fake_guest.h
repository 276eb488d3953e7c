// A fake guest behind both of kvbackup's freeze paths, for unit tests of the
// freezer without a cluster: FakePodExec runs virt-freezer (and anything a
// test scripts) against one guest's frozen flag, and FakeFreezeApi is
// KubeVirt's freeze API over the same flag. Tests can hold a freeze command
// "in flight" and let it land later, fail unfreezes, and see every command run.
#pragma once

#include "kubevirt/freeze_api.h"
#include "rules/executor.h"

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace kvb::backup::fake {

struct Guest {
  std::mutex mu;
  std::condition_variable cv;
  bool frozen = false;
  int freezes = 0, thaws = 0;
  bool hold_freezes = false;      // freeze commands stay running until land_freezes()
  bool landed = false;
  bool land_on_first_unfreeze = false;  // the held freezes land right after kvbackup's first thaw
  int failing_unfreezes = 0;      // this many unfreezes (exec or API) fail
  std::vector<std::vector<std::string>> commands;

  void land_freezes() {
    std::lock_guard l(mu);
    landed = true;
    cv.notify_all();
  }
  bool is_frozen() {
    std::lock_guard l(mu);
    return frozen;
  }
};

class Session : public kube::ExecSession {
 public:
  // `result` runs on the session's thread; `hold` makes it wait for the guest's release first.
  Session(Guest& g, std::function<kube::ExecResult()> result, bool hold, bool background, std::string marker,
          kube::ExecObserver obs);
  ~Session() override;
  void write_stdin(std::string) override {}
  void close_stdin() override;
  void cancel() override;
  kube::ExecResult wait() override;
  std::optional<kube::ExecResult> wait_for(std::chrono::milliseconds d) override;
  bool done() const override;

 private:
  Guest& g_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<kube::ExecResult> result_;
  bool stdin_closed_ = false, cancelled_ = false;
  std::thread th_;
};

class PodExec : public rules::PodExec {
 public:
  explicit PodExec(Guest& g) : g_(g) {}
  std::shared_ptr<kube::ExecSession> start(kube::ExecRequest request, kube::ExecObserver observer) override;

 private:
  Guest& g_;
};

class FreezeApi : public kubevirt::FreezeApi {
 public:
  explicit FreezeApi(Guest& g) : g_(g) {}
  kubevirt::FreezeCall freeze(const std::string&, const std::string&, std::chrono::seconds) override;
  kubevirt::FreezeCall unfreeze(const std::string&, const std::string&) override;
  kubevirt::FreezeCall status(const std::string&, const std::string&) override;

 private:
  Guest& g_;
};

}  // namespace kvb::backup::fake
