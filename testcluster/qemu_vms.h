// QemuVms: the real guests of the test cluster. A VM marked `guest: qemu` in the
// scenario boots a real Linux guest (testcluster/guest) when its VMI starts;
// freeze, thaw, fsFreezeStatus and snapshot cuts of its volume go to the real
// agent and to QMP.
//
// The loop thread never blocks on a guest: each guest has its own worker thread
// that launches QEMU, owns the QemuGuest and runs the calls in order; results
// come back to the loop thread through EventLoop::post.
//
// Invariants:
// - A worker thread outlives its QEMU (PR_SET_PDEATHSIG fires when the thread
//   that launched QEMU exits): the worker closes the guest, thawing it first if
//   it may be frozen, before it ends.
// - Callbacks run on the loop thread, and never after the QemuVms is destroyed.
// - stop() and the destructor never leave a QEMU running or a guest frozen by us.
#pragma once

#include "common/error.h"
#include "testcluster/guest/fs_oracle.h"
#include "testcluster/guest/qemu_guest.h"
#include "testcluster/net/event_loop.h"

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace kvb::testcluster {

class QemuVms {
 public:
  explicit QemuVms(EventLoop& loop, std::filesystem::path image_dir);
  ~QemuVms();
  QemuVms(const QemuVms&) = delete;
  QemuVms& operator=(const QemuVms&) = delete;

  // Boots a guest under `key` ("ns/vm") on disk (the claim's file in the volume
  // store; formatted with the seed content first when it holds no file system);
  // on_agent gets the time from launch to the agent answering, or why not.
  void start(const std::string& key, const std::filesystem::path& disk,
             std::function<void(Result<std::chrono::milliseconds>)> on_agent);
  // Closes the guest (thawing it first) in the background; returns at once.
  // on_closed (loop thread) gets what closing did, unless the QemuVms goes first.
  void stop(const std::string& key, std::function<void(guest::CloseReport)> on_closed = {});
  bool has(const std::string& key) const { return workers_.count(key) > 0; }

  void freeze(const std::string& key, std::function<void(Result<guest::FreezeOutcome>)> done);
  void thaw(const std::string& key, std::function<void(Result<int>)> done);
  void freeze_status(const std::string& key, std::function<void(Result<std::string>)> done);
  // Any agent command with its arguments (a JSON object or empty); done gets
  // the "return" member as JSON (tests: guest-file-open/write/read/close).
  void agent_call(const std::string& key, const std::string& command, const std::string& args_json,
                  std::function<void(Result<std::string>)> done);
  // Test hook (any thread): run on a guest's worker thread once its agent first
  // answers and BEFORE AgentConnected is reported, with the key ("ns/vm") and
  // the guest (so a test can read a file in a guest that a client deletes as
  // soon as it sees AgentConnected). Empty: none.
  using AgentProbe = std::function<void(const std::string& key, guest::QemuGuest& g)>;
  void set_agent_probe(AgentProbe probe);
  // A point-in-time copy of the guest's disk into target, started as soon as the
  // worker is free (at once unless a freeze/thaw is in flight), then the oracle
  // on the copy. started() runs (on the loop) when the job has started.
  void cut(const std::string& key, const std::filesystem::path& target, std::function<void()> started,
           std::function<void(Result<guest::Ext4Check>)> done);

 private:
  class Worker;
  void run(const std::string& key, std::function<void(guest::QemuGuest*)> task);
  void reap();

  EventLoop& loop_;
  std::filesystem::path image_dir_;
  std::shared_ptr<bool> alive_;
  std::map<std::string, std::shared_ptr<Worker>> workers_;
  std::vector<std::shared_ptr<Worker>> stopping_;
  std::shared_ptr<std::mutex> probe_mu_ = std::make_shared<std::mutex>();
  std::shared_ptr<AgentProbe> probe_ = std::make_shared<AgentProbe>();
};

}  // namespace kvb::testcluster
