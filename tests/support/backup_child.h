// A `kvbackup backup create` running as a child process, for tests that
// signal, kill or race it: started stuck in its freeze window (the test cluster
// delays every cut by 120 s), with its stderr read line by line.
#pragma once

#include "common/subprocess.h"
#include "tests/support/test_cluster.h"

#include <string>
#include <vector>

namespace kvb::testing {

// Starts the backup `name` of namespace prod into location `loc`; its cuts are
// delayed 120 s. `env`: variables added to the child's environment (an S3
// location's credentials).
SpawnedProcess start_stuck_backup(TestCluster& tc, const std::string& loc, const std::string& name,
                                  const std::vector<std::string>& extra_args = {}, const EnvVars& env = {});
// Reads the child's stderr until `count` lines contain `needle` (appending to `seen`); false at EOF.
bool wait_for_lines(int fd, const std::string& needle, int count, std::string& seen);
// Waits for the child and closes its pipes; returns the wait status.
int reap(const SpawnedProcess& child);

}  // namespace kvb::testing
