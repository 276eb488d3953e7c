// kvbackup command line entry point.
#include "cli/options.h"
#include "version.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>

int main(int argc, char** argv) {
  using namespace kvb::cli;
  CLI::App app{"kvbackup: file-system-consistent backups of KubeVirt virtual machines"};
  app.require_subcommand(1);
  app.fallthrough();  // global options (-n, --kubeconfig) also after the command
  app.set_help_all_flag("--help-all", "Show help for every command");
  GlobalOptions g;
  app.add_option("--kubeconfig", g.kubeconfig, "Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)");
  app.add_option("--context", g.context, "Kubeconfig context");
  app.add_option("-n,--namespace", g.namespace_name, "Namespace (default: the context's)");
  app.add_flag("-A,--all-namespaces", g.all_namespaces, "Every namespace");
  app.add_option("--log-level", g.log_level, "Log level: trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.add_option("--qps", g.qps, "Client-side API rate limit (0: none)");
  app.add_option("--burst", g.burst, "Client-side API burst");
  CommandAction run;
  register_version(app, run);
  register_rules(app, g, run);
  register_backup(app, g, run);
  register_restore(app, g, run);
  register_repo(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitBadInput;
  }
  auto logger = spdlog::stderr_color_mt("kvbackup");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(g.log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  return run ? run() : kExitOk;
}
