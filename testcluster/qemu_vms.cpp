#include "testcluster/qemu_vms.h"

#include <atomic>
#include <csignal>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace kvb::testcluster {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// Posts fn to the loop unless the owner is gone by then.
template <class Fn>
void post_if_alive(EventLoop& loop, std::weak_ptr<bool> alive, Fn fn) {
  loop.post([alive = std::move(alive), fn = std::move(fn)]() mutable {
    if (alive.lock()) fn();
  });
}

Error no_guest() { return Error(Errc::kTransport, "QEMU guest agent is not connected (the guest is not running)"); }

}  // namespace

// One guest's thread: runs tasks in order; the guest lives and dies on it.
class QemuVms::Worker {
 public:
  using Task = std::function<void(guest::QemuGuest*)>;

  explicit Worker(std::function<void()> on_exit) : on_exit_(std::move(on_exit)) {
    thread_ = std::thread([this] { main(); });
  }
  ~Worker() {
    request_stop();
    if (thread_.joinable()) thread_.join();
  }

  // The first task launches the guest (set_guest); later ones use it.
  void push(Task t) {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    tasks_.push_back(std::move(t));
    cv_.notify_one();
  }
  void request_stop() {
    std::lock_guard lock(mu_);
    stopping_ = true;
    // A guest still booting has no agent, so nothing can be frozen: end the
    // boot wait at once (the read sees QEMU exit) instead of waiting it out.
    if (booting_pid_ > 0) ::kill(booting_pid_, SIGKILL);
    cv_.notify_one();
  }
  // While set (and not yet reaped: only this worker reaps, after clearing it),
  // request_stop() may kill the booting QEMU.
  void set_booting(pid_t pid) {
    std::lock_guard lock(mu_);
    booting_pid_ = pid;
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  void set_guest(std::unique_ptr<guest::QemuGuest> g) { guest_ = std::move(g); }
  bool finished() const { return finished_; }
  // After finished(): what closing the guest did (default when it never booted).
  const guest::CloseReport& report() const { return report_; }
  std::function<void(guest::CloseReport)> on_closed;  // loop thread only

 private:
  void main() {
    for (;;) {
      Task t;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
        if (tasks_.empty()) break;  // stopping, and every queued task has run
        t = std::move(tasks_.front());
        tasks_.pop_front();
      }
      t(guest_.get());
    }
    if (guest_) report_ = guest_->close();  // thaws a possibly frozen guest, quits, reaps
    guest_.reset();
    finished_ = true;
    if (on_exit_) on_exit_();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> tasks_;
  bool stopping_ = false;
  pid_t booting_pid_ = 0;
  std::unique_ptr<guest::QemuGuest> guest_;
  guest::CloseReport report_;
  std::function<void()> on_exit_;
  std::atomic<bool> finished_{false};
  std::thread thread_;
};

QemuVms::QemuVms(EventLoop& loop, fs::path image_dir)
    : loop_(loop), image_dir_(std::move(image_dir)), alive_(std::make_shared<bool>(true)) {}

QemuVms::~QemuVms() {
  alive_.reset();  // callbacks already posted are dropped
  for (auto& [k, w] : workers_) w->request_stop();
  for (auto& w : stopping_) w->request_stop();
  workers_.clear();   // joins: each worker closes its guest first
  stopping_.clear();
}

void QemuVms::run(const std::string& key, std::function<void(guest::QemuGuest*)> task) {
  auto it = workers_.find(key);
  if (it == workers_.end()) {
    task(nullptr);  // runs on the loop: the task reports "no guest"
    return;
  }
  it->second->push(std::move(task));
}


void QemuVms::start(const std::string& key, const fs::path& disk,
                    std::function<void(Result<std::chrono::milliseconds>)> on_agent) {
  if (workers_.count(key)) stop(key);
  // When the worker ends (after stop()), the loop joins it and forgets it.
  auto w = std::make_shared<Worker>([this, alive = std::weak_ptr<bool>(alive_)] {
    post_if_alive(loop_, alive, [this] { reap(); });
  });
  workers_[key] = w;
  auto image_dir = image_dir_;
  auto& loop = loop_;
  std::weak_ptr<bool> alive = alive_;
  w->push([w_raw = w.get(), image_dir, disk, &loop, alive, on_agent, key, probe_mu = probe_mu_,
           probe = probe_](guest::QemuGuest*) {
    auto image = guest::GuestImage::locate(image_dir);
    if (!image) {
      post_if_alive(loop, alive, [on_agent, e = image.error()] { on_agent(e); });
      return;
    }
    // A disk without a file system (a new claim) gets the seed content; one that
    // has one (a restored claim) boots as it is.
    auto formatted = guest::has_ext4(disk);
    Status prepared = formatted ? ok() : Status(formatted.error());
    if (formatted && !*formatted) prepared = image->format_disk(disk);
    if (!prepared) {
      post_if_alive(loop, alive, [on_agent, e = prepared.error()] { on_agent(e.with_context("preparing the guest disk")); });
      return;
    }
    auto g = guest::QemuGuest::launch(guest::QemuGuestSpec{*image, disk});
    if (!g) {
      post_if_alive(loop, alive, [on_agent, e = g.error()] { on_agent(e); });
      return;
    }
    w_raw->set_booting((*g)->pid());
    auto up = (*g)->wait_for_agent(180s);
    w_raw->set_booting(0);
    if (up) {
      AgentProbe p;
      {
        std::lock_guard lock(*probe_mu);
        p = *probe;
      }
      if (p) p(key, **g);
    }
    w_raw->set_guest(std::move(*g));
    post_if_alive(loop, alive, [on_agent, up] { on_agent(up); });
  });
}

void QemuVms::reap() {
  for (auto it = stopping_.begin(); it != stopping_.end();) {
    if ((*it)->finished()) {
      (*it)->join();
      auto done = std::move((*it)->on_closed);
      guest::CloseReport rep = (*it)->report();
      it = stopping_.erase(it);
      if (done) done(rep);
    } else {
      ++it;
    }
  }
}

void QemuVms::stop(const std::string& key, std::function<void(guest::CloseReport)> on_closed) {
  auto it = workers_.find(key);
  if (it == workers_.end()) return;
  it->second->on_closed = std::move(on_closed);
  it->second->request_stop();
  stopping_.push_back(it->second);
  workers_.erase(it);
}

void QemuVms::freeze(const std::string& key, std::function<void(Result<guest::FreezeOutcome>)> done) {
  auto& loop = loop_;
  std::weak_ptr<bool> alive = alive_;
  run(key, [&loop, alive, done](guest::QemuGuest* g) {
    if (!g) return post_if_alive(loop, alive, [done] { done(no_guest()); });
    auto r = g->freeze();
    post_if_alive(loop, alive, [done, r] { done(r); });
  });
}

void QemuVms::thaw(const std::string& key, std::function<void(Result<int>)> done) {
  auto& loop = loop_;
  std::weak_ptr<bool> alive = alive_;
  run(key, [&loop, alive, done](guest::QemuGuest* g) {
    if (!g) return post_if_alive(loop, alive, [done] { done(no_guest()); });
    auto r = g->thaw();
    post_if_alive(loop, alive, [done, r] { done(r); });
  });
}

void QemuVms::freeze_status(const std::string& key, std::function<void(Result<std::string>)> done) {
  auto& loop = loop_;
  std::weak_ptr<bool> alive = alive_;
  run(key, [&loop, alive, done](guest::QemuGuest* g) {
    if (!g) return post_if_alive(loop, alive, [done] { done(no_guest()); });
    auto r = g->freeze_status();
    post_if_alive(loop, alive, [done, r] { done(r); });
  });
}

void QemuVms::agent_call(const std::string& key, const std::string& command, const std::string& args_json,
                         std::function<void(Result<std::string>)> done) {
  auto& loop = loop_;
  std::weak_ptr<bool> alive = alive_;
  run(key, [&loop, alive, done, command, args_json](guest::QemuGuest* g) {
    if (!g) return post_if_alive(loop, alive, [done] { done(no_guest()); });
    auto r = g->agent_call(command, args_json);
    post_if_alive(loop, alive, [done, r] { done(r); });
  });
}

void QemuVms::set_agent_probe(AgentProbe probe) {
  std::lock_guard lock(*probe_mu_);
  *probe_ = std::move(probe);
}

void QemuVms::cut(const std::string& key, const fs::path& target, std::function<void()> started,
                  std::function<void(Result<guest::Ext4Check>)> done) {
  auto& loop = loop_;
  std::weak_ptr<bool> alive = alive_;
  run(key, [&loop, alive, target, started, done](guest::QemuGuest* g) {
    if (!g) return post_if_alive(loop, alive, [done] { done(no_guest()); });
    auto job = g->start_backup(target, true);
    if (!job) return post_if_alive(loop, alive, [done, e = job.error()] { done(e); });
    post_if_alive(loop, alive, started);
    auto finished = g->wait_backup(*job);
    if (!finished) return post_if_alive(loop, alive, [done, e = finished.error()] { done(e); });
    auto check = guest::inspect_ext4(target);
    post_if_alive(loop, alive, [done, check] { done(check); });
  });
}

}  // namespace kvb::testcluster
