#include "cli/options.h"

#include "common/atomic_file.h"
#include "common/sanitize.h"
#include "kube/config.h"

#include <cstdio>

namespace kvb::cli {

void add_scope_options(CLI::App* cmd, ScopeOptions& scope) {
  cmd->add_option("--vm", scope.vms, "Only these VMs (repeatable; NAME or NAMESPACE/NAME)");
  cmd->add_option("-l,--selector", scope.selector, "Only VMs whose labels match this selector");
}

kubevirt::Scope make_scope(const GlobalOptions& g, const ScopeOptions& s, const std::string& default_ns) {
  kubevirt::Scope scope;
  scope.all_namespaces = g.all_namespaces;
  if (!g.all_namespaces) scope.namespaces = {g.namespace_name.empty() ? default_ns : g.namespace_name};
  scope.vm_names = s.vms;
  scope.label_selector = s.selector;
  return scope;
}

Result<std::shared_ptr<kube::Client>> connect(const GlobalOptions& g) {
  kube::LoadOptions lo;
  lo.kubeconfig = g.kubeconfig;
  lo.context = g.context;
  lo.namespace_name = g.namespace_name;
  KVB_TRY(auto config, kube::load_config(lo));
  kube::ClientOptions co;
  co.qps = g.qps;
  co.burst = g.burst;
  return kube::Client::create(config, co);
}

Result<std::unique_ptr<location::Location>> open_location(const std::string& name) {
  KVB_TRY(auto loc, location::open(name.empty() ? location::default_location() : name, location::OpenMode::kCreate));
  // A backup location's journal directory, private from the start (whoever creates it later).
  if (auto root = loc->local_root()) KVB_CHECK(make_directories(*root / "journal", 0700));
  return loc;
}

Result<std::unique_ptr<location::Location>> open_existing_location(const std::string& name) {
  return location::open(name.empty() ? location::default_location() : name, location::OpenMode::kExisting);
}

int exit_code_for(const Error& e) {
  switch (e.code) {
    case Errc::kInvalidArgument:
    case Errc::kConfig:
    case Errc::kParse:
      return kExitBadInput;
    default:
      return kExitFailed;
  }
}

int report_error(const Error& e) {
  // Errors carry what servers and files said: never a credential, never a terminal escape.
  std::fprintf(stderr, "kvbackup: %s\n", sanitize_foreign(e.message.empty() ? e.describe() : e.message).c_str());
  return exit_code_for(e);
}

}  // namespace kvb::cli
