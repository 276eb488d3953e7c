#include "kube/credentials.h"

#include "common/atomic_file.h"
#include "common/base64.h"
#include "common/bounded_read.h"
#include "common/time.h"

#include <boost/json.hpp>

#include <sys/stat.h>

namespace kvb::kube {
namespace json = boost::json;
namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return s.substr(i);
}

std::string one_line_excerpt(std::string s, size_t max) {
  if (s.size() > max) s = s.substr(0, max) + "…";
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return trim(s);
}

}  // namespace

CredentialProvider::CredentialProvider(RestConfig config) : config_(std::move(config)) {}

bool CredentialProvider::refreshable() const {
  return config_.user.exec.has_value() || !config_.user.token_file.empty();
}

void CredentialProvider::invalidate() {
  std::lock_guard lock(mu_);
  have_material_ = false;
  token_file_mtime_ns_ = -1;
}

std::optional<AuthMaterial> CredentialProvider::cached_if_fresh() {
  if (!config_.user.exec) {
    // Static credentials and token files are cheap to produce (a stat at most).
    auto m = get();
    if (!m) return std::nullopt;
    return *m;
  }
  // Never wait here (the io thread calls this): while get() runs the plugin on
  // the helper thread, the material is being refreshed, so it is not fresh.
  std::unique_lock lock(mu_, std::try_to_lock);
  if (!lock.owns_lock() || !have_material_) return std::nullopt;
  if (expires_ && std::chrono::system_clock::now() >= *expires_) return std::nullopt;
  return material_;
}

Status CredentialProvider::reread_token_file() {
  struct stat st{};
  const auto& path = config_.user.token_file;
  if (::stat(path.c_str(), &st) != 0) {
    if (have_material_) return ok();  // keep the last good token, as client-go does
    return Error(Errc::kConfig, "token file " + path.string() + " cannot be read");
  }
  int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  if (have_material_ && mtime == token_file_mtime_ns_ && st.st_size == token_file_size_) return ok();
  auto data = read_file_bounded(path, "token file");
  if (!data) {
    if (have_material_) return ok();
    return Error(Errc::kConfig, "token file " + path.string() + " cannot be read");
  }
  std::string token = trim(*data);
  if (token.empty()) {
    if (have_material_) return ok();
    return Error(Errc::kConfig, "token file " + path.string() + " is empty");
  }
  material_.authorization = Secret("Bearer " + token);
  token_file_mtime_ns_ = mtime;
  token_file_size_ = st.st_size;
  have_material_ = true;
  return ok();
}

Result<AuthMaterial> CredentialProvider::get() {
  std::lock_guard lock(mu_);
  const AuthInfo& u = config_.user;
  if (u.exec) {
    if (have_material_ && (!expires_ || std::chrono::system_clock::now() < *expires_)) return material_;
    auto fresh = run_exec_plugin();
    if (!fresh) return fresh.error();
    material_ = *fresh;
    have_material_ = true;
    return material_;
  }
  if (!u.token_file.empty()) {
    if (auto st = reread_token_file(); !st) return st.error();
    // Client certificates may accompany a token file.
    material_.client_certificate_pem = u.client_certificate_pem;
    material_.client_key_pem = u.client_key_pem;
    return material_;
  }
  if (!have_material_) {
    if (!u.token.empty()) {
      material_.authorization = Secret("Bearer " + u.token.reveal());
    } else if (!u.username.empty() || !u.password.empty()) {
      material_.authorization = Secret("Basic " + base64_encode(u.username + ":" + u.password.reveal()));
    }
    material_.client_certificate_pem = u.client_certificate_pem;
    material_.client_key_pem = u.client_key_pem;
    have_material_ = true;
  }
  return material_;
}

Result<AuthMaterial> CredentialProvider::run_exec_plugin() {
  const ExecPluginConfig& ex = *config_.user.exec;
  json::object spec{{"interactive", false}};
  if (ex.provide_cluster_info) {
    json::object cluster{{"server", config_.cluster.server},
                         {"insecure-skip-tls-verify", config_.cluster.insecure_skip_tls_verify}};
    if (!config_.cluster.tls_server_name.empty()) cluster["tls-server-name"] = config_.cluster.tls_server_name;
    if (!config_.cluster.ca_pem.empty()) cluster["certificate-authority-data"] = base64_encode(config_.cluster.ca_pem);
    spec["cluster"] = std::move(cluster);
  }
  json::object info{{"apiVersion", ex.api_version}, {"kind", "ExecCredential"}, {"spec", std::move(spec)}};

  ProcessSpec ps;
  ps.argv.push_back(ex.command);
  ps.argv.insert(ps.argv.end(), ex.args.begin(), ex.args.end());
  ps.env_overrides = ex.env;
  ps.env_overrides.emplace_back("KUBERNETES_EXEC_INFO", json::serialize(info));
  ps.timeout = std::chrono::seconds(60);
  ps.output_cap = 1 << 20;
  std::string who = "exec credential plugin \"" + ex.command + "\" (user in " + config_.origin + ")";
  auto run = run_process(ps);
  if (!run) {
    std::string msg = who + ": " + run.error().message;
    if (!ex.install_hint.empty()) msg += "; " + one_line_excerpt(ex.install_hint, 300);
    return Error(Errc::kConfig, msg);
  }
  if (run->timed_out) return Error(Errc::kTimeout, who + ": did not finish within 60s");
  if (run->exit_code != 0) {
    std::string err = one_line_excerpt(run->err, 400);
    return Error(Errc::kUnauthorized, who + " exited with code " + std::to_string(run->exit_code) +
                                          (err.empty() ? "" : ": " + err));
  }
  boost::system::error_code ec;
  json::value v = json::parse(run->out, ec);
  if (ec || !v.is_object()) return Error(Errc::kParse, who + ": output is not an ExecCredential JSON object");
  const json::object& o = v.get_object();
  auto str = [](const json::object& obj, std::string_view key) -> std::string {
    auto* p = obj.if_contains(key);
    return p && p->is_string() ? std::string(p->get_string()) : std::string();
  };
  if (str(o, "kind") != "ExecCredential") return Error(Errc::kParse, who + ": output kind is not ExecCredential");
  if (str(o, "apiVersion") != ex.api_version) {
    return Error(Errc::kParse, who + ": output apiVersion \"" + str(o, "apiVersion") + "\" does not match the requested \"" +
                                   ex.api_version + "\"");
  }
  auto* status = o.if_contains("status");
  if (!status || !status->is_object()) return Error(Errc::kParse, who + ": output has no status");
  const json::object& s = status->get_object();
  AuthMaterial m;
  std::string token = str(s, "token");
  std::string cert = str(s, "clientCertificateData");
  std::string key = str(s, "clientKeyData");
  if (token.empty() && cert.empty()) return Error(Errc::kParse, who + ": status has neither token nor clientCertificateData");
  if (cert.empty() != key.empty()) {
    return Error(Errc::kParse, who + ": status must have both clientCertificateData and clientKeyData");
  }
  if (!token.empty()) m.authorization = Secret("Bearer " + token);
  m.client_certificate_pem = cert;
  m.client_key_pem = Secret(key);
  m.certificate_generation = material_.certificate_generation + (cert != material_.client_certificate_pem ? 1 : 0);
  expires_.reset();
  if (std::string exp = str(s, "expirationTimestamp"); !exp.empty()) {
    auto t = parse_rfc3339(exp);
    if (!t) return Error(Errc::kParse, who + ": status.expirationTimestamp: " + t.error().message);
    expires_ = *t;
  }
  return m;
}

}  // namespace kvb::kube
