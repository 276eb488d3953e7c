// StopSignals: turns SIGINT, SIGTERM, SIGHUP (the terminal or SSH session
// closed) and SIGQUIT into a stop request.
//
// Construct it before any thread starts (it blocks the signals for the whole
// process, and threads inherit the mask); a dedicated thread waits for them
// with sigwait and requests stop on the token every backup step watches. The
// backup then thaws every VM it froze before it returns: a signal never kills
// kvbackup with a guest frozen. A second signal only repeats the message.
#pragma once

#include <stop_token>
#include <thread>

namespace kvb::cli {

class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  std::stop_token token() const { return source_.get_token(); }
  int received() const { return signal_; }

 private:
  std::stop_source source_;
  volatile int signal_ = 0;
  std::thread waiter_;
};

}  // namespace kvb::cli
