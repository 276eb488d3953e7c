#include "kube/config.h"

#include "common/atomic_file.h"
#include "common/base64.h"
#include "common/bounded_read.h"
#include "common/yaml_json.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <map>

namespace kvb::kube {
namespace fs = std::filesystem;
namespace {

// One named entry (cluster, user or context) and the file that defined it.
struct Entry {
  YAML::Node body;
  fs::path file;
  std::string list;   // "clusters", "users", "contexts"
  size_t index = 0;
};

struct Merged {
  std::map<std::string, Entry> clusters, users, contexts;
  std::string current_context;
  std::vector<fs::path> files;
};

Error config_error(const fs::path& file, const std::string& where, const std::string& what) {
  std::string msg = "kubeconfig " + file.string();
  if (!where.empty()) msg += ": " + where;
  msg += ": " + what;
  return Error(Errc::kConfig, msg);
}

std::string where_of(const Entry& e, const std::string& name) {
  return e.list + "[" + std::to_string(e.index) + "] \"" + name + "\"";
}

Result<std::string> scalar(const YAML::Node& n, const char* key, const fs::path& file,
                           const std::string& where) {
  YAML::Node v = n[key];
  if (!v || v.IsNull()) return std::string();
  if (!v.IsScalar()) return config_error(file, where, std::string("field ") + key + " must be a string");
  return v.as<std::string>();
}

Result<bool> boolean(const YAML::Node& n, const char* key, const fs::path& file, const std::string& where) {
  YAML::Node v = n[key];
  if (!v || v.IsNull()) return false;
  bool out = false;
  if (!v.IsScalar() || !YAML::convert<bool>::decode(v, out)) {
    return config_error(file, where, std::string("field ") + key + " must be true or false, not \"" +
                                         (v.IsScalar() ? v.Scalar() : std::string("<non-scalar>")) + "\"");
  }
  return out;
}

fs::path resolve_path(const fs::path& file, const std::string& p) {
  if (p.empty()) return {};
  fs::path path(p);
  if (path.is_absolute()) return path;
  if (p.rfind("~/", 0) == 0) {
    const char* home = std::getenv("HOME");
    return fs::path(home ? home : "") / p.substr(2);
  }
  return file.parent_path() / path;
}

Result<std::string> read_referenced(const fs::path& file, const std::string& where, const char* field,
                                    const fs::path& path) {
  auto data = read_file_bounded(path, std::string(field) + " file");
  if (!data) return config_error(file, where, std::string("field ") + field + ": " + data.error().message);
  return *data;
}

// Reads `<field>-data` (base64) or `<field>` (a file path), data winning.
Result<std::string> file_or_data(const YAML::Node& n, const std::string& field, const fs::path& file,
                                 const std::string& where) {
  std::string data_key = field + "-data";
  auto data = scalar(n, data_key.c_str(), file, where);
  if (!data) return data.error();
  if (!data->empty()) {
    auto decoded = base64_decode(*data);
    if (!decoded) return config_error(file, where, "field " + data_key + " is not valid base64");
    return *decoded;
  }
  auto path = scalar(n, field.c_str(), file, where);
  if (!path) return path.error();
  if (path->empty()) return std::string();
  return read_referenced(file, where, field.c_str(), resolve_path(file, *path));
}

Status load_one(const fs::path& file, Merged& m) {
  auto text = read_file_bounded(file, "kubeconfig");
  if (!text) return Error(Errc::kConfig, text.error().message);
  // The same checks as every other document kvbackup reads: no key twice, no
  // NUL, no alias bomb (yaml-cpp's own tree shares aliased nodes, but walking
  // it would expand them).
  if (auto checked = parse_yaml(*text, file.string()); !checked) return Error(Errc::kConfig, checked.error().message);
  YAML::Node root;
  try {
    root = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    return config_error(file, "line " + std::to_string(e.mark.line + 1), "invalid YAML: " + e.msg);
  }
  if (!root || root.IsNull()) return ok();  // an empty file is an empty config, as in kubectl
  if (!root.IsMap()) return config_error(file, "", "top level must be a mapping (apiVersion, kind, clusters, ...)");
  m.files.push_back(file);
  for (const char* list : {"clusters", "users", "contexts"}) {
    YAML::Node seq = root[list];
    if (!seq || seq.IsNull()) continue;
    if (!seq.IsSequence()) return config_error(file, list, "must be a list");
    auto& target = std::string(list) == "clusters" ? m.clusters
                   : std::string(list) == "users"  ? m.users
                                                   : m.contexts;
    const char* body_key = std::string(list) == "clusters" ? "cluster"
                           : std::string(list) == "users"  ? "user"
                                                           : "context";
    for (size_t i = 0; i < seq.size(); ++i) {
      YAML::Node item = seq[i];
      std::string where = std::string(list) + "[" + std::to_string(i) + "]";
      if (!item.IsMap()) return config_error(file, where, "must be a mapping with name and " + std::string(body_key));
      auto name = scalar(item, "name", file, where);
      if (!name) return name.error();
      if (name->empty()) return config_error(file, where, "missing field name");
      YAML::Node body = item[body_key];
      if (body && !body.IsNull() && !body.IsMap()) {
        return config_error(file, where + " \"" + *name + "\"", std::string("field ") + body_key + " must be a mapping");
      }
      target.try_emplace(*name, Entry{body ? body : YAML::Node(YAML::NodeType::Map), file, list, i});
    }
  }
  if (m.current_context.empty()) {
    auto cc = scalar(root, "current-context", file, "");
    if (!cc) return cc.error();
    m.current_context = *cc;
  }
  return ok();
}

std::string origin_of(const Merged& m) {
  std::string s;
  for (const auto& f : m.files) s += (s.empty() ? "" : ":") + f.string();
  return s.empty() ? "<no kubeconfig>" : s;
}

Result<ExecPluginConfig> parse_exec(const YAML::Node& n, const fs::path& file, const std::string& where) {
  ExecPluginConfig ex;
  std::string w = where + " exec";
  auto api = scalar(n, "apiVersion", file, w);
  if (!api) return api.error();
  ex.api_version = *api;
  if (ex.api_version != "client.authentication.k8s.io/v1" &&
      ex.api_version != "client.authentication.k8s.io/v1beta1") {
    return config_error(file, w, "field apiVersion: unsupported \"" + ex.api_version +
                                     "\" (use client.authentication.k8s.io/v1 or v1beta1)");
  }
  auto cmd = scalar(n, "command", file, w);
  if (!cmd) return cmd.error();
  if (cmd->empty()) return config_error(file, w, "missing field command");
  ex.command = *cmd;
  // A relative command with a slash is relative to the kubeconfig file, as in client-go.
  if (ex.command.find('/') != std::string::npos && fs::path(ex.command).is_relative()) {
    ex.command = (file.parent_path() / ex.command).string();
  }
  if (YAML::Node args = n["args"]; args && !args.IsNull()) {
    if (!args.IsSequence()) return config_error(file, w, "field args must be a list of strings");
    for (const auto& a : args) {
      if (!a.IsScalar()) return config_error(file, w, "field args must be a list of strings");
      ex.args.push_back(a.as<std::string>());
    }
  }
  if (YAML::Node env = n["env"]; env && !env.IsNull()) {
    if (!env.IsSequence()) return config_error(file, w, "field env must be a list of {name, value}");
    for (size_t i = 0; i < env.size(); ++i) {
      auto name = scalar(env[i], "name", file, w);
      auto value = scalar(env[i], "value", file, w);
      if (!name) return name.error();
      if (!value) return value.error();
      if (name->empty()) return config_error(file, w, "env[" + std::to_string(i) + "] has no name");
      ex.env.emplace_back(*name, *value);
    }
  }
  auto hint = scalar(n, "installHint", file, w);
  if (!hint) return hint.error();
  ex.install_hint = *hint;
  auto pci = boolean(n, "provideClusterInfo", file, w);
  if (!pci) return pci.error();
  ex.provide_cluster_info = *pci;
  auto mode = scalar(n, "interactiveMode", file, w);
  if (!mode) return mode.error();
  ex.interactive_mode = *mode;
  if (ex.api_version == "client.authentication.k8s.io/v1" && ex.interactive_mode.empty()) {
    return config_error(file, w, "field interactiveMode is required for client.authentication.k8s.io/v1");
  }
  if (!ex.interactive_mode.empty() && ex.interactive_mode != "Never" && ex.interactive_mode != "IfAvailable" &&
      ex.interactive_mode != "Always") {
    return config_error(file, w, "field interactiveMode: \"" + ex.interactive_mode +
                                     "\" is not one of Never, IfAvailable, Always");
  }
  return ex;
}

Result<ClusterInfo> materialize_cluster(const Entry& e, const std::string& name) {
  std::string where = where_of(e, name);
  ClusterInfo c;
  auto server = scalar(e.body, "server", e.file, where);
  if (!server) return server.error();
  if (server->empty()) return config_error(e.file, where, "missing field server");
  c.server = *server;
  if (c.server.rfind("https://", 0) != 0 && c.server.rfind("http://", 0) != 0) {
    return config_error(e.file, where, "field server: \"" + c.server + "\" must start with https:// or http://");
  }
  auto insecure = boolean(e.body, "insecure-skip-tls-verify", e.file, where);
  if (!insecure) return insecure.error();
  c.insecure_skip_tls_verify = *insecure;
  auto sni = scalar(e.body, "tls-server-name", e.file, where);
  if (!sni) return sni.error();
  c.tls_server_name = *sni;
  auto ca = file_or_data(e.body, "certificate-authority", e.file, where);
  if (!ca) return ca.error();
  c.ca_pem = *ca;
  if (!c.ca_pem.empty()) {
    auto path = scalar(e.body, "certificate-authority-data", e.file, where);
    c.ca_origin = path && !path->empty() ? e.file.string() + " (" + where + " certificate-authority-data)"
                                         : *scalar(e.body, "certificate-authority", e.file, where);
    if (c.insecure_skip_tls_verify) {
      return config_error(e.file, where,
                          "certificate-authority and insecure-skip-tls-verify are both set; choose one");
    }
  }
  return c;
}

Result<AuthInfo> materialize_user(const Entry& e, const std::string& name) {
  std::string where = where_of(e, name);
  AuthInfo u;
  auto token = scalar(e.body, "token", e.file, where);
  if (!token) return token.error();
  u.token = Secret(*token);
  auto token_file = scalar(e.body, "tokenFile", e.file, where);
  if (!token_file) return token_file.error();
  u.token_file = resolve_path(e.file, *token_file);
  if (!u.token_file.empty()) {
    auto t = read_referenced(e.file, where, "tokenFile", u.token_file);
    if (!t) return t.error();
  }
  auto cert = file_or_data(e.body, "client-certificate", e.file, where);
  if (!cert) return cert.error();
  u.client_certificate_pem = *cert;
  auto key = file_or_data(e.body, "client-key", e.file, where);
  if (!key) return key.error();
  u.client_key_pem = Secret(*key);
  if (u.client_certificate_pem.empty() != u.client_key_pem.empty()) {
    return config_error(e.file, where, "client-certificate and client-key must be given together");
  }
  auto user = scalar(e.body, "username", e.file, where);
  if (!user) return user.error();
  u.username = *user;
  auto pass = scalar(e.body, "password", e.file, where);
  if (!pass) return pass.error();
  u.password = Secret(*pass);
  bool has_token = !u.token.empty() || !u.token_file.empty();
  bool has_basic = !u.username.empty() || !u.password.empty();
  if (has_token && has_basic) {
    return config_error(e.file, where,
                        "more than one authentication method (token and username/password); only one is allowed");
  }
  if (YAML::Node ex = e.body["exec"]; ex && !ex.IsNull()) {
    if (!ex.IsMap()) return config_error(e.file, where, "field exec must be a mapping");
    auto plugin = parse_exec(ex, e.file, where);
    if (!plugin) return plugin.error();
    u.exec = *plugin;
  }
  if (YAML::Node ap = e.body["auth-provider"]; ap && !ap.IsNull()) {
    return config_error(e.file, where,
                        "auth-provider plugins were removed from Kubernetes; use an exec credential plugin");
  }
  return u;
}

Result<RestConfig> resolve(const Merged& m, const std::string& context_override) {
  std::string ctx_name = context_override.empty() ? m.current_context : context_override;
  std::string origin = origin_of(m);
  if (ctx_name.empty()) {
    return Error(Errc::kConfig, "kubeconfig " + origin + ": no context selected (current-context is not set; use --context)");
  }
  auto ctx = m.contexts.find(ctx_name);
  if (ctx == m.contexts.end()) {
    return Error(Errc::kConfig, "kubeconfig " + origin + ": context \"" + ctx_name + "\" does not exist");
  }
  const Entry& ce = ctx->second;
  std::string where = where_of(ce, ctx_name);
  auto cluster_name = scalar(ce.body, "cluster", ce.file, where);
  if (!cluster_name) return cluster_name.error();
  auto user_name = scalar(ce.body, "user", ce.file, where);
  if (!user_name) return user_name.error();
  auto ns = scalar(ce.body, "namespace", ce.file, where);
  if (!ns) return ns.error();
  auto cl = m.clusters.find(*cluster_name);
  if (cluster_name->empty() || cl == m.clusters.end()) {
    return config_error(ce.file, where, "cluster \"" + *cluster_name + "\" is not defined");
  }
  RestConfig rc;
  auto cluster = materialize_cluster(cl->second, *cluster_name);
  if (!cluster) return cluster.error();
  rc.cluster = *cluster;
  if (!user_name->empty()) {
    auto us = m.users.find(*user_name);
    if (us == m.users.end()) return config_error(ce.file, where, "user \"" + *user_name + "\" is not defined");
    auto user = materialize_user(us->second, *user_name);
    if (!user) return user.error();
    rc.user = std::move(*user);
  }
  rc.namespace_name = ns->empty() ? "default" : *ns;
  rc.context_name = ctx_name;
  rc.origin = origin;
  return rc;
}

}  // namespace

Result<RestConfig> load_kubeconfig_files(const std::vector<fs::path>& files, const std::string& context,
                                         bool skip_missing) {
  Merged m;
  for (const auto& f : files) {
    std::error_code ec;
    if (skip_missing && !fs::exists(f, ec)) continue;
    if (auto st = load_one(f, m); !st) return st.error();
  }
  return resolve(m, context);
}

Result<RestConfig> load_in_cluster_config(const fs::path& dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !port || !*host || !*port) {
    return Error(Errc::kConfig, "not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set");
  }
  RestConfig rc;
  std::string h = host;
  if (h.find(':') != std::string::npos) h = "[" + h + "]";  // IPv6 literal
  rc.cluster.server = "https://" + h + ":" + port;
  rc.user.token_file = dir / "token";
  auto token = read_file_bounded(rc.user.token_file, "service account token");
  if (!token) return Error(Errc::kConfig, "in-cluster config: " + token.error().message);
  auto ca = read_file_bounded(dir / "ca.crt", "service account CA");
  if (!ca) return Error(Errc::kConfig, "in-cluster config: " + ca.error().message);
  rc.cluster.ca_pem = *ca;
  rc.cluster.ca_origin = (dir / "ca.crt").string();
  if (auto ns = read_file_bounded(dir / "namespace", "service account namespace"); ns && !ns->empty()) {
    std::string n = *ns;
    while (!n.empty() && (n.back() == '\n' || n.back() == ' ')) n.pop_back();
    rc.namespace_name = n;
  }
  rc.in_cluster = true;
  rc.origin = "in-cluster service account (" + dir.string() + ")";
  return rc;
}

Result<RestConfig> load_config(const LoadOptions& o) {
  Result<RestConfig> rc = Error(Errc::kConfig, "");
  if (!o.kubeconfig.empty()) {
    std::error_code ec;
    if (!fs::exists(o.kubeconfig, ec)) {
      return Error(Errc::kConfig, "kubeconfig " + o.kubeconfig + ": file does not exist (from --kubeconfig)");
    }
    rc = load_kubeconfig_files({o.kubeconfig}, o.context, false);
  } else if (const char* env = std::getenv("KUBECONFIG"); env && *env) {
    std::vector<fs::path> files;
    std::string list = env;
    size_t start = 0;
    while (start <= list.size()) {
      size_t colon = list.find(':', start);
      std::string part = list.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
      if (!part.empty()) files.emplace_back(part);
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
    rc = load_kubeconfig_files(files, o.context, true);
  } else {
    const char* home = std::getenv("HOME");
    fs::path def = fs::path(home ? home : "") / ".kube" / "config";
    std::error_code ec;
    if (home && fs::exists(def, ec)) {
      rc = load_kubeconfig_files({def}, o.context, false);
    } else {
      rc = load_in_cluster_config(o.service_account_dir);
      if (!rc) {
        return Error(Errc::kConfig,
                     "no cluster configuration: no --kubeconfig, KUBECONFIG is not set, " + def.string() +
                         " does not exist, and " + rc.error().message);
      }
    }
  }
  if (!rc) return rc;
  if (!o.namespace_name.empty()) rc->namespace_name = o.namespace_name;
  return rc;
}

}  // namespace kvb::kube
