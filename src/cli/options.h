// What every kvbackup command shares: how to reach the cluster, which VMs are
// in scope, the output format, and the exit codes.
#pragma once

#include "common/error.h"
#include "kube/client.h"
#include "kubevirt/inventory.h"
#include "location/location.h"

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kvb::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitBadInput = 2;

struct GlobalOptions {
  std::string kubeconfig;
  std::string context;
  std::string namespace_name;
  bool all_namespaces = false;
  std::string log_level = "warn";
  double qps = 200;
  int burst = 400;
};

struct ScopeOptions {
  std::vector<std::string> vms;
  std::string selector;
};

// The command to run once parsing succeeded; returns the exit code.
// What a parsed command line runs: set by the chosen subcommand's callback.
using CommandAction = std::function<int()>;

void add_scope_options(CLI::App* cmd, ScopeOptions& scope);
kubevirt::Scope make_scope(const GlobalOptions& g, const ScopeOptions& s, const std::string& default_ns);

Result<std::shared_ptr<kube::Client>> connect(const GlobalOptions& g);

// --location DIR|s3://BUCKET/PREFIX, else $KVBACKUP_LOCATION, else ./kvbackup-backups; created if missing.
Result<std::unique_ptr<location::Location>> open_location(const std::string& dir);
// The same for commands that only read or change what is there (list,
// describe, delete, recover, restore): a missing location is an error naming it.
Result<std::unique_ptr<location::Location>> open_existing_location(const std::string& dir);

// Prints "kvbackup: <message>" to stderr and returns the exit code for the error.
int report_error(const Error& e);
int exit_code_for(const Error& e);

void register_version(CLI::App& app, CommandAction& run);
void register_rules(CLI::App& app, GlobalOptions& g, CommandAction& run);
void register_backup(CLI::App& app, GlobalOptions& g, CommandAction& run);
void register_restore(CLI::App& app, GlobalOptions& g, CommandAction& run);
void register_repo(CLI::App& app, CommandAction& run);

}  // namespace kvb::cli
