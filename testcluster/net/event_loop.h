// EventLoop: the single thread on which the test cluster (and the in-test HTTPS
// servers) run all of their logic, without exposing Asio to the code above it.
//
// Invariant: every callback given to post()/after() and every server handler
// runs on the loop thread, one at a time, so state touched only from callbacks
// needs no locks.
//
// The loop measures how late it runs each timer (fire time - deadline): the
// time a due timer waited behind other work on the loop thread, i.e. the
// loop's queueing delay (read it on the loop thread only).
#pragma once

#include "testcluster/net/latency_stats.h"

#include <chrono>
#include <functional>
#include <memory>

namespace kvb::testcluster {

class Timer {
 public:
  virtual ~Timer() = default;
  virtual void cancel() = 0;
};

class EventLoop {
 public:
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  void post(std::function<void()> fn);
  // Runs fn after d on the loop thread unless the returned Timer is cancelled
  // first (the handle may be dropped: the timer still fires).
  std::shared_ptr<Timer> after(std::chrono::nanoseconds d, std::function<void()> fn);
  // Runs fn on the loop thread and waits for it (for other threads: tests,
  // signals). After stop() it returns at once without running fn.
  void run_sync(const std::function<void()>& fn);
  bool in_loop_thread() const;
  // Lateness of every timer fired so far (loop thread only).
  const LatencyStats& timer_lateness() const;
  void stop();

  // The underlying boost::asio::io_context, for net/*.cpp only.
  void* native();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvb::testcluster
