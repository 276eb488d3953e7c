#include "tests/support/backup_child.h"

#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>

namespace kvb::testing {

bool wait_for_lines(int fd, const std::string& needle, int count, std::string& seen) {
  char buf[4096];
  for (;;) {
    size_t found = 0;
    for (size_t pos = seen.find(needle); pos != std::string::npos; pos = seen.find(needle, pos + 1)) ++found;
    if (static_cast<int>(found) >= count) return true;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return false;
    seen.append(buf, static_cast<size_t>(n));
  }
}

SpawnedProcess start_stuck_backup(TestCluster& tc, const std::string& loc, const std::string& name,
                                  const std::vector<std::string>& extra_args, const EnvVars& env) {
  tc.add_fault(R"({"type":"snapshot-cut-delay","delay":"120s"})");
  std::vector<std::string> argv{kvbackup_binary(), "--kubeconfig", tc.kubeconfig().string(), "backup", "create", name, "-n", "prod",
                                "--location", loc, "--freeze-deadline", "5m"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  auto child = spawn_process(argv, environment_with(env), {});
  if (!child) throw std::runtime_error(child.error().message);
  ::close(child->stdin_fd);
  return *child;
}

int reap(const SpawnedProcess& child) {
  int wstatus = 0;
  ::waitpid(child.pid, &wstatus, 0);
  ::close(child.stdout_fd);
  ::close(child.stderr_fd);
  return wstatus;
}

}  // namespace kvb::testing
