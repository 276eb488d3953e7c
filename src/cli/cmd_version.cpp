#include "cli/options.h"
#include "version.h"

#include <cstdio>

namespace kvb::cli {

void register_version(CLI::App& app, CommandAction& run) {
  auto* cmd = app.add_subcommand("version", "Print the kvbackup version");
  cmd->callback([&run] {
    run = [] {
      std::printf("kvbackup %s (%s)\n", kKvbackupVersion, kKvbackupGitRevision);
      return kExitOk;
    };
  });
}

}  // namespace kvb::cli
