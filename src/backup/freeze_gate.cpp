#include "backup/freeze_gate.h"

namespace kvb::backup {

FreezeGate::Token& FreezeGate::Token::operator=(Token&& o) noexcept {
  if (this != &o) {
    reset();
    gate_ = o.gate_;
    window_ = o.window_;
    o.gate_ = nullptr;
  }
  return *this;
}

void FreezeGate::Token::reset() {
  if (!gate_) return;
  FreezeGate* g = gate_;
  gate_ = nullptr;
  g->end(window_);
}

bool FreezeGate::may_start() const {
  if (!enabled()) return true;
  return counts_.in_window == 0 && counts_.freezing < static_cast<size_t>(max_freezing_);
}

Result<FreezeGate::Token> FreezeGate::admit(std::stop_token stop) {
  std::unique_lock lock(mu_);
  ++counts_.waiting;
  cv_.notify_all();  // wait_until() observers
  bool ok = cv_.wait(lock, stop, [this] { return may_start(); });
  --counts_.waiting;
  if (!ok) {
    cv_.notify_all();
    return Error(Errc::kCancelled, "interrupted before the freeze started");
  }
  ++counts_.freezing;
  ++counts_.admitted;
  cv_.notify_all();
  return Token(this, false);
}

Status FreezeGate::quiet(std::stop_token stop) {
  if (!enabled()) return ok();
  std::unique_lock lock(mu_);
  ++counts_.quieting;
  cv_.notify_all();
  bool done = cv_.wait(lock, stop, [this] { return counts_.in_window == 0; });
  --counts_.quieting;
  cv_.notify_all();
  if (!done) return Error(Errc::kCancelled, "interrupted");
  return ok();
}

FreezeGate::Token FreezeGate::in_window() {
  std::lock_guard lock(mu_);
  ++counts_.in_window;
  cv_.notify_all();
  return Token(this, true);
}

void FreezeGate::end(bool window) {
  {
    std::lock_guard lock(mu_);
    if (window) {
      --counts_.in_window;
    } else {
      --counts_.freezing;
    }
  }
  cv_.notify_all();
}

FreezeGate::Counts FreezeGate::counts() const {
  std::lock_guard lock(mu_);
  return counts_;
}

bool FreezeGate::wait_until(const std::function<bool(const Counts&)>& pred, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  return cv_.wait_until(lock, deadline, [&] { return pred(counts_); });
}

}  // namespace kvb::backup
