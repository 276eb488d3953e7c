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

// Wake-ups: each state change wakes only whom it can concern. An admit()
// waiter is woken one at a time (notify_one) whenever a freeze may start; the
// one woken, once admitted, wakes the next if another may start too, and one
// that gives up (stop) passes its wake-up on. quiet() waiters are woken when the
// last InWindow scope ends; wait_until() observers on every change. Before
// this, every change woke every waiter: at fleet scale (100 workers waiting)
// that cost kvbackup CPU on each snapshot create and thaw.
void FreezeGate::wake_admitter() {
  if (counts_.waiting > 0 && may_start()) admit_cv_.notify_one();
}

Result<FreezeGate::Token> FreezeGate::admit(std::stop_token stop) {
  std::unique_lock lock(mu_);
  ++counts_.waiting;
  observe_cv_.notify_all();
  bool ok = admit_cv_.wait(lock, stop, [this] { return may_start(); });
  --counts_.waiting;
  if (!ok) {
    wake_admitter();
    observe_cv_.notify_all();
    return Error(Errc::kCancelled, "interrupted before the freeze started");
  }
  ++counts_.freezing;
  ++counts_.admitted;
  wake_admitter();
  observe_cv_.notify_all();
  return Token(this, false);
}

Status FreezeGate::quiet(std::stop_token stop) {
  if (!enabled()) return ok();
  std::unique_lock lock(mu_);
  ++counts_.quieting;
  observe_cv_.notify_all();
  bool done = quiet_cv_.wait(lock, stop, [this] { return counts_.in_window == 0; });
  --counts_.quieting;
  observe_cv_.notify_all();
  if (!done) return Error(Errc::kCancelled, "interrupted");
  return ok();
}

FreezeGate::Token FreezeGate::in_window() {
  std::lock_guard lock(mu_);
  ++counts_.in_window;
  observe_cv_.notify_all();
  return Token(this, true);
}

void FreezeGate::end(bool window) {
  std::lock_guard lock(mu_);
  if (window) {
    if (--counts_.in_window == 0) quiet_cv_.notify_all();
  } else {
    --counts_.freezing;
  }
  wake_admitter();
  observe_cv_.notify_all();
}

FreezeGate::Counts FreezeGate::counts() const {
  std::lock_guard lock(mu_);
  return counts_;
}

bool FreezeGate::wait_until(const std::function<bool(const Counts&)>& pred, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  return observe_cv_.wait_until(lock, deadline, [&] { return pred(counts_); });
}

}  // namespace kvb::backup
