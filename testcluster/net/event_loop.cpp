#include "testcluster/net/event_loop.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <future>
#include <thread>

namespace kvb::testcluster {
namespace asio = boost::asio;

struct EventLoop::Impl {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
  std::thread thread;
  std::thread::id id;
  std::atomic<bool> stopped{false};
  LatencyStats lateness;  // loop thread only
};

namespace {
class AsioTimer : public Timer, public std::enable_shared_from_this<AsioTimer> {
 public:
  AsioTimer(asio::io_context& io, LatencyStats& lateness) : timer_(io), lateness_(lateness) {}
  void cancel() override {
    cancelled_ = true;
    timer_.cancel();
  }
  void start(std::chrono::nanoseconds d, std::function<void()> fn) {
    timer_.expires_after(d);
    // The pending wait keeps the timer alive: fire-and-forget works; cancel() stops it.
    timer_.async_wait([self = shared_from_this(), fn = std::move(fn)](const boost::system::error_code& ec) {
      if (ec || self->cancelled_) return;
      self->lateness_.record(asio::steady_timer::clock_type::now() - self->timer_.expiry());
      fn();
    });
  }
  ~AsioTimer() override { timer_.cancel(); }

 private:
  asio::steady_timer timer_;
  LatencyStats& lateness_;
  bool cancelled_ = false;
};
}  // namespace

EventLoop::EventLoop() : impl_(std::make_unique<Impl>()) {
  std::promise<void> started;
  impl_->thread = std::thread([this, &started] {
    impl_->id = std::this_thread::get_id();
    started.set_value();
    impl_->io.run();
  });
  started.get_future().wait();
}

EventLoop::~EventLoop() { stop(); }

void EventLoop::stop() {
  impl_->stopped = true;
  if (!impl_->thread.joinable()) return;
  impl_->guard.reset();
  impl_->io.stop();
  if (std::this_thread::get_id() != impl_->id) impl_->thread.join();
  else impl_->thread.detach();
}

void EventLoop::post(std::function<void()> fn) { asio::post(impl_->io, std::move(fn)); }

std::shared_ptr<Timer> EventLoop::after(std::chrono::nanoseconds d, std::function<void()> fn) {
  auto t = std::make_shared<AsioTimer>(impl_->io, impl_->lateness);
  t->start(d, std::move(fn));
  return t;
}

void EventLoop::run_sync(const std::function<void()>& fn) {
  if (in_loop_thread()) {
    fn();
    return;
  }
  if (impl_->stopped) return;  // nothing runs any more
  std::promise<void> done;
  post([&] {
    fn();
    done.set_value();
  });
  done.get_future().wait();
}

bool EventLoop::in_loop_thread() const { return std::this_thread::get_id() == impl_->id; }

const LatencyStats& EventLoop::timer_lateness() const { return impl_->lateness; }

void* EventLoop::native() { return &impl_->io; }

}  // namespace kvb::testcluster
