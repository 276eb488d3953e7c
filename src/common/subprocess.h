// Running local programs as argv vectors (never through a shell).
//
// run_process() runs a program to completion with a timeout, feeding it stdin
// and capturing stdout/stderr up to a cap; it is used for kubeconfig exec
// credential plugins and by test tooling. spawn_process() starts a program with
// three pipes and returns their file descriptors, for callers that drive the
// pipes asynchronously (the test cluster's exec).
//
// Invariants: the child never inherits other descriptors of this process (all
// are opened O_CLOEXEC); a timed-out child is killed (SIGKILL to its process
// group) and reaped before run_process() returns.
#pragma once

#include "common/error.h"

#include <chrono>
#include <filesystem>
#include <string>
#include <sys/types.h>
#include <utility>
#include <vector>

namespace kvb {

using EnvVars = std::vector<std::pair<std::string, std::string>>;

struct ProcessSpec {
  std::vector<std::string> argv;      // argv[0] is looked up in PATH if it has no '/'
  EnvVars env_overrides;              // added to (or replacing in) the inherited environment
  bool inherit_environment = true;
  std::filesystem::path working_dir;  // empty: this process's
  std::string stdin_data;
  std::chrono::milliseconds timeout{30'000};
  size_t output_cap = 4 << 20;        // per stream; the rest is discarded
};

struct ProcessResult {
  int exit_code = -1;   // -1 when killed by a signal
  int term_signal = 0;
  bool timed_out = false;
  std::string out;
  std::string err;
};

Result<ProcessResult> run_process(const ProcessSpec& spec);

struct SpawnedProcess {
  pid_t pid = -1;
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
};

// Starts argv in its own process group. env is the complete environment.
Result<SpawnedProcess> spawn_process(const std::vector<std::string>& argv, const EnvVars& env,
                                     const std::filesystem::path& working_dir);

// The current environment with overrides applied.
EnvVars environment_with(const EnvVars& overrides);

}  // namespace kvb
