#include "tests/backup/fake_guest.h"

namespace kvb::backup::fake {

namespace {
constexpr const char* kDone = R"({"component":"freezer","level":"info","msg":"Operation completed successfully"})";

kube::ExecResult exited(int code, std::string err = {}) {
  kube::ExecResult r;
  r.status = ok();
  r.exit_code = code;
  r.err = std::move(err);
  return r;
}

bool has(const std::vector<std::string>& argv, const std::string& word) {
  for (const auto& a : argv)
    if (a.find(word) != std::string::npos) return true;
  return false;
}
}  // namespace

Session::Session(Guest& g, std::function<kube::ExecResult()> result, bool hold, bool background, std::string marker,
                 kube::ExecObserver obs)
    : g_(g) {
  th_ = std::thread([this, result, hold, background, marker, obs] {
    if (background) {
      if (obs.on_stdout) obs.on_stdout(marker + "\n");
      std::unique_lock l(mu_);
      cv_.wait(l, [this] { return stdin_closed_ || cancelled_; });
      result_ = exited(0);
      cv_.notify_all();
      return;
    }
    if (hold) {
      std::unique_lock gl(g_.mu);
      g_.cv.wait(gl, [this] { return g_.landed; });
    }
    auto r = result();
    std::lock_guard l(mu_);
    result_ = cancelled_ ? kube::ExecResult{Error(Errc::kCancelled, "cancelled"), -1, r.out, r.err, 0, 0, "", {}} : r;
    cv_.notify_all();
  });
}

Session::~Session() {
  cancel();
  g_.land_freezes();  // never leave the thread waiting
  th_.join();
}

void Session::close_stdin() {
  std::lock_guard l(mu_);
  stdin_closed_ = true;
  cv_.notify_all();
}

void Session::cancel() {
  std::lock_guard l(mu_);
  cancelled_ = true;
  cv_.notify_all();
}

kube::ExecResult Session::wait() {
  std::unique_lock l(mu_);
  cv_.wait(l, [this] { return result_.has_value(); });
  return *result_;
}

std::optional<kube::ExecResult> Session::wait_for(std::chrono::milliseconds d) {
  std::unique_lock l(mu_);
  if (!cv_.wait_for(l, d, [this] { return result_.has_value(); })) return std::nullopt;
  return result_;
}

bool Session::done() const {
  std::lock_guard l(mu_);
  return result_.has_value();
}

std::shared_ptr<kube::ExecSession> PodExec::start(kube::ExecRequest req, kube::ExecObserver obs) {
  std::vector<std::string> argv = req.command;
  {
    std::lock_guard l(g_.mu);
    g_.commands.push_back(argv);
  }
  std::string text;
  for (const auto& a : argv) text += a + " ";
  if (auto p = text.find("KVBACKUP-WAIT-READY-"); p != std::string::npos) {
    std::string marker = text.substr(p, std::string("KVBACKUP-WAIT-READY-").size() + 16);
    return std::make_shared<Session>(g_, [] { return exited(0); }, false, true, marker, obs);
  }
  Guest& g = g_;
  if (has(argv, "virt-freezer") && has(argv, "--freeze")) {
    bool hold;
    {
      std::lock_guard l(g.mu);
      hold = g.hold_freezes;
    }
    return std::make_shared<Session>(g, [&g] {
      std::lock_guard l(g.mu);
      g.frozen = true;
      ++g.freezes;
      return exited(0, kDone);
    }, hold, false, "", obs);
  }
  if (has(argv, "virt-freezer") && has(argv, "--unfreeze")) {
    return std::make_shared<Session>(g, [&g] {
      std::lock_guard l(g.mu);
      if (g.failing_unfreezes > 0) {
        --g.failing_unfreezes;
        return exited(1, R"({"component":"freezer","msg":"Unfreezing VMI failed"})");
      }
      g.frozen = false;
      ++g.thaws;
      if (g.land_on_first_unfreeze) {
        g.landed = true;
        g.cv.notify_all();
      }
      return exited(0, kDone);
    }, false, false, "", obs);
  }
  return std::make_shared<Session>(g, [] { return exited(0); }, false, false, "", obs);  // `true`, or anything else
}

kubevirt::FreezeCall FreezeApi::freeze(const std::string&, const std::string&, std::chrono::seconds) {
  std::lock_guard l(g_.mu);
  g_.frozen = true;
  ++g_.freezes;
  return {kubevirt::FreezeState::kFrozen, std::nullopt, {}, "200 OK"};
}

kubevirt::FreezeCall FreezeApi::unfreeze(const std::string&, const std::string&) {
  std::lock_guard l(g_.mu);
  if (g_.failing_unfreezes > 0) {
    --g_.failing_unfreezes;
    Error e(Errc::kUnauthorized, "Unauthorized");
    e.http_status = 401;
    return {kubevirt::FreezeState::kError, e, {}, "401 Unauthorized"};
  }
  g_.frozen = false;
  ++g_.thaws;
  return {kubevirt::FreezeState::kThawed, std::nullopt, {}, "200 OK"};
}

kubevirt::FreezeCall FreezeApi::status(const std::string&, const std::string&) {
  std::lock_guard l(g_.mu);
  return {g_.frozen ? kubevirt::FreezeState::kFrozen : kubevirt::FreezeState::kThawed, std::nullopt, {},
          std::string("fsFreezeStatus=") + (g_.frozen ? "frozen" : "thawed")};
}

}  // namespace kvb::backup::fake
