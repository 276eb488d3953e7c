#include "cli/stop_signals.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>

namespace kvb::cli {

namespace {
// SIGUSR2 is the private "done" signal that ends the waiting thread.
sigset_t watched_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);   // the terminal went away: still thaw first
  sigaddset(&set, SIGQUIT);
  sigaddset(&set, SIGUSR2);
  return set;
}
}  // namespace

StopSignals::StopSignals() {
  std::signal(SIGPIPE, SIG_IGN);  // a closed terminal or pipe must not kill kvbackup while a guest is frozen
  sigset_t set = watched_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  waiter_ = std::thread([this, set] {
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0 || sig == SIGUSR2) return;
      signal_ = sig;
      static const char msg[] = "kvbackup: stopping: thawing every frozen VM first (this takes seconds, not minutes)\n";
      (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
      source_.request_stop();
    }
  });
}

StopSignals::~StopSignals() {
  pthread_kill(waiter_.native_handle(), SIGUSR2);
  waiter_.join();
  sigset_t set = watched_signals();
  sigdelset(&set, SIGUSR2);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

}  // namespace kvb::cli
