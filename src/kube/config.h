// Where kvbackup finds its cluster and credentials: kubeconfig files and the
// in-cluster service account, resolved the way kubectl and client-go do.
//
// Resolution order: an explicit --kubeconfig file; else the KUBECONFIG list
// (colon-separated, missing files skipped, merged first-wins: the first file to
// define a cluster/user/context name or current-context wins); else
// ~/.kube/config; else the in-cluster service account. Relative paths inside a
// file are relative to that file's directory. --context overrides
// current-context; --namespace overrides the context's namespace ("default").
//
// Invariant: a RestConfig holds secrets only inside kvb::Secret, so printing a
// RestConfig or an Error about one never shows a token, password or key.
#pragma once

#include "common/error.h"
#include "common/secret.h"
#include "common/subprocess.h"

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace kvb::kube {

struct ExecPluginConfig {
  std::string api_version;  // client.authentication.k8s.io/v1 or /v1beta1
  std::string command;
  std::vector<std::string> args;
  EnvVars env;
  std::string install_hint;
  bool provide_cluster_info = false;
  std::string interactive_mode;  // Never | IfAvailable | Always (we never prompt)
};

struct ClusterInfo {
  std::string server;         // https://host:port[/prefix]
  std::string ca_pem;         // empty: the system trust store
  std::string ca_origin;      // where ca_pem came from, for messages
  bool insecure_skip_tls_verify = false;
  std::string tls_server_name;
};

struct AuthInfo {
  Secret token;
  std::filesystem::path token_file;
  std::string client_certificate_pem;
  Secret client_key_pem;
  std::string username;
  Secret password;
  std::optional<ExecPluginConfig> exec;
};

struct RestConfig {
  ClusterInfo cluster;
  AuthInfo user;
  std::string namespace_name = "default";
  std::string context_name;  // empty for in-cluster
  std::string origin;        // the kubeconfig file(s) or "in-cluster", for messages
  bool in_cluster = false;
};

struct LoadOptions {
  std::string kubeconfig;       // --kubeconfig; empty: KUBECONFIG, ~/.kube/config, in-cluster
  std::string context;          // --context
  std::string namespace_name;   // --namespace
  std::filesystem::path service_account_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
};

Result<RestConfig> load_config(const LoadOptions& options);

// The pieces, for tests and tools.
Result<RestConfig> load_in_cluster_config(const std::filesystem::path& service_account_dir);
// Loads and merges the given files (first wins) and resolves a context.
Result<RestConfig> load_kubeconfig_files(const std::vector<std::filesystem::path>& files,
                                         const std::string& context, bool skip_missing);

}  // namespace kvb::kube
