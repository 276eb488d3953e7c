// FreezeGate: the priority lane for work inside freeze windows (docs/backup.md,
// "What it costs the guest").
//
// The kube client has one I/O thread and the API server answers in turn, so a
// frozen VM's snapshot create, hold check and thaw wait behind whatever else
// was sent before them — at fleet scale, mostly the freeze execs of VMs not yet
// frozen. The gate holds back the START of new freezes while frozen VMs have
// work in flight:
//
//   - a VM inside its window marks that work with an InWindow scope: from the
//     moment it is frozen until its snapshots are created, and from the moment
//     its cut is seen until its thaw has ended;
//   - admit() lets a freeze start only when no InWindow scope is open and fewer
//     than max_freezing freezes are in flight. Freezes are not starved: window
//     work comes only from VMs already frozen, never waits here, and is not
//     replenished while freezes wait, so the scopes drain;
//   - work after a VM's thaw (saving its resources: GETs and file writes)
//     waits in quiet() until no InWindow scope is open. It cannot starve: a
//     worker waiting there holds its place in the backup's concurrency, so
//     while it waits fewer freezes start and the windows drain.
//
// Invariants: only admit() ever waits; opening an InWindow scope, and so a
// snapshot create or a thaw, never waits for anything here. The gate delays a
// freeze before it starts, never one that started, so nothing is frozen while
// waiting at the gate (quiet() is only called after the thaw), and what makes
// a VM file-system consistent (the freeze
// held across every cut, the thaw confirmed) is untouched. admit() returns
// Errc::kCancelled when `stop` is requested. max_freezing <= 0 disables the
// gate (admit() never waits; the bench's baseline).
//
// A VM holds its slot from before its freeze lease is taken until its freeze
// call has ended, so a lease held by another backup can keep one slot for up
// to --freeze-wait. The thaw of a freeze that failed runs inside the freeze
// call, under the slot and in an InWindow scope (the guest may be frozen).
//
// Threads: every member may be called from any thread.
#pragma once

#include "common/error.h"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <stop_token>

namespace kvb::backup {

class FreezeGate {
 public:
  struct Counts {
    size_t freezing = 0;   // admitted freezes not yet ended
    size_t in_window = 0;  // open InWindow scopes
    size_t waiting = 0;    // admit() calls waiting
    size_t quieting = 0;   // quiet() calls waiting
    size_t admitted = 0;   // admit() calls that returned a slot, ever
  };

  // Move-only tokens; ending one (destruction or reset()) gives its count back.
  class Token {
   public:
    Token() = default;
    Token(Token&& o) noexcept : gate_(o.gate_), window_(o.window_) { o.gate_ = nullptr; }
    Token& operator=(Token&& o) noexcept;
    Token(const Token&) = delete;
    Token& operator=(const Token&) = delete;
    ~Token() { reset(); }
    void reset();
    explicit operator bool() const { return gate_ != nullptr; }

   private:
    friend class FreezeGate;
    Token(FreezeGate* g, bool window) : gate_(g), window_(window) {}
    FreezeGate* gate_ = nullptr;
    bool window_ = false;
  };

  explicit FreezeGate(int max_freezing) : max_freezing_(max_freezing) {}
  FreezeGate(const FreezeGate&) = delete;
  FreezeGate& operator=(const FreezeGate&) = delete;

  bool enabled() const { return max_freezing_ > 0; }

  // Waits until a freeze may start; the returned slot is held until the freeze
  // call has ended (before it is released, the caller opens an InWindow scope
  // if the VM is frozen).
  Result<Token> admit(std::stop_token stop);
  // Marks work inside a freeze window; never waits.
  Token in_window();
  // Waits until no InWindow scope is open (work after a thaw). Errc::kCancelled
  // when `stop` is requested. Never waits when the gate is disabled.
  Status quiet(std::stop_token stop);

  Counts counts() const;
  // Waits until pred(counts()) holds or `deadline` passes; true when it held.
  // For tests and diagnostics.
  bool wait_until(const std::function<bool(const Counts&)>& pred, std::chrono::steady_clock::time_point deadline);

 private:
  void end(bool window);
  bool may_start() const;  // mu_ held
  void wake_admitter();    // mu_ held

  const int max_freezing_;
  mutable std::mutex mu_;
  std::condition_variable_any admit_cv_, quiet_cv_;  // admit() and quiet() waiters
  std::condition_variable observe_cv_;               // wait_until() observers
  Counts counts_;
};

}  // namespace kvb::backup
