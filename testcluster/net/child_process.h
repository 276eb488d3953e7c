// ChildProcess: a real local process driven from the EventLoop (the test
// cluster runs container commands with /bin/sh in a private directory).
//
// Output arrives through callbacks on the loop thread; on_exit runs once, after
// the process has exited and both output pipes reached end of file, so no
// output is lost. kill() sends SIGKILL to the process group.
#pragma once

#include "common/error.h"
#include "common/subprocess.h"
#include "testcluster/net/event_loop.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kvb::testcluster {

struct ChildCallbacks {
  std::function<void(std::string)> on_stdout;
  std::function<void(std::string)> on_stderr;
  std::function<void(int exit_code)> on_exit;  // 128+signal when killed by a signal
};

class ChildProcess {
 public:
  virtual ~ChildProcess() = default;
  virtual void write_stdin(std::string data) = 0;
  virtual void close_stdin() = 0;
  virtual void kill() = 0;

  static Result<std::shared_ptr<ChildProcess>> start(EventLoop& loop, const std::vector<std::string>& argv,
                                                     const EnvVars& env, const std::filesystem::path& cwd,
                                                     ChildCallbacks callbacks);
};

}  // namespace kvb::testcluster
