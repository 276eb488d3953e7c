// Signal: a wake-up flag that one coroutine waits on and others notify, all on
// the same io thread (header-only; used by src/kube and the test cluster).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace kvb::kube::detail {

class Signal {
 public:
  explicit Signal(boost::asio::any_io_executor ex) : timer_(ex) {
    timer_.expires_at(boost::asio::steady_timer::time_point::max());
  }
  void notify() {
    pending_ = true;
    timer_.cancel();
  }
  boost::asio::awaitable<void> wait() {
    while (!pending_) {
      timer_.expires_at(boost::asio::steady_timer::time_point::max());
      co_await timer_.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    }
    pending_ = false;
  }

 private:
  boost::asio::steady_timer timer_;
  bool pending_ = false;
};

}  // namespace kvb::kube::detail
