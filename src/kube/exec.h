// Running commands in containers: pods/{name}/exec over WebSocket.
//
// start_exec() opens the stream (offering v5.channel.k8s.io, then v4) and
// returns at once with a session handle; the stream itself runs on the client's
// io thread, so hundreds of execs can run at once without a thread each.
// The session collects stdout/stderr (capped), lets the caller write stdin and
// close it (v5 only), and finishes with the exit code decoded from the error
// channel, or with an error: the API refused the exec (typed, from its Status),
// the command could not run, the stream dropped before the exit status came, the
// per-exec timeout passed, or the caller cancelled. Cancelling or timing out
// closes the stream, which is what stops the remote command. Destroying the
// Client cancels the sessions still running on it and waits for them to end.
#pragma once

#include "common/error.h"
#include "kube/client.h"

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

namespace kvb::kube {

struct ExecRequest {
  std::string ns;
  std::string pod;
  std::string container;              // empty: the pod's default container
  std::vector<std::string> command;   // argv; no shell unless you put one here
  bool stdin = false;
  std::chrono::milliseconds timeout{60'000};  // whole exec, from start to exit status
  size_t output_limit = 64 * 1024;            // bytes kept per stream; the rest is counted, not kept
  bool critical = false;                      // skip the client-side rate limiter (thaw)
};

struct ExecResult {
  Status status;       // ok when the command ran to completion (whatever its exit code)
  int exit_code = -1;  // valid when status is ok
  std::string out;
  std::string err;
  size_t out_bytes = 0;  // total received, including what output_limit dropped
  size_t err_bytes = 0;
  std::string protocol;  // negotiated subprotocol
  std::chrono::nanoseconds duration{0};

  bool succeeded() const { return status.has_value() && exit_code == 0; }
};

struct ExecObserver {
  // Called on the io thread as output arrives; must not block.
  std::function<void(std::string_view)> on_stdout;
  std::function<void(std::string_view)> on_stderr;
};

class ExecSession {
 public:
  virtual ~ExecSession() = default;
  virtual void write_stdin(std::string data) = 0;
  virtual void close_stdin() = 0;  // no-op on v4 (the protocol has no way to say it)
  virtual void cancel() = 0;
  virtual ExecResult wait() = 0;
  virtual std::optional<ExecResult> wait_for(std::chrono::milliseconds d) = 0;
  virtual bool done() const = 0;
};

std::shared_ptr<ExecSession> start_exec(const std::shared_ptr<Client>& client, ExecRequest request,
                                        ExecObserver observer = {});

// Blocking convenience; `stop` cancels.
ExecResult exec(const std::shared_ptr<Client>& client, ExecRequest request, std::stop_token stop = {});

}  // namespace kvb::kube
