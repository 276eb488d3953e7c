// kvbackup command line entry point.
#include "version.h"

#include <CLI/CLI.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  CLI::App app{"kvbackup: file-system-consistent backups of KubeVirt virtual machines"};
  app.require_subcommand(1);
  auto* version = app.add_subcommand("version", "Print the kvbackup version");
  version->callback([] { std::printf("kvbackup %s (%s)\n", kKvbackupVersion, kKvbackupGitRevision); });
  CLI11_PARSE(app, argc, argv);
  return 0;
}
