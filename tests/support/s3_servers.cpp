#include "tests/support/s3_servers.h"

#include "location/s3/client.h"
#include "net/http_transport.h"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

namespace kvb::testing {
namespace {

namespace fs = std::filesystem;

std::string script(const std::string& name) { return std::string(KVB_SOURCE_DIR) + "/tests/support/s3/" + name; }

std::string field(const std::string& text, const std::string& key) {
  auto at = text.find(key + "=");
  if (at == std::string::npos) return {};
  at += key.size() + 1;
  return text.substr(at, text.find_first_of(" \n", at) - at);
}

Status create_bucket(const S3Server& s) {
  location::s3::Settings st;
  st.bucket = s.bucket;
  st.display = "s3://" + s.bucket;
  st.region = "us-east-1";
  st.endpoint = s.endpoint;
  st.tls = false;
  st.path_style = true;
  st.credentials.access_key_id = s.access_key;
  st.credentials.secret_access_key = Secret(s.secret_key);
  st.credentials_origin = "the test";
  KVB_TRY(auto client, location::s3::Client::create(st));
  location::s3::Client::Call c{"PUT", "", {}, {}, {}, true, false};
  auto r = client->call(c);
  if (!r && r.error().reason != "BucketAlreadyOwnedByYou" && r.error().reason != "BucketAlreadyExists") return r.error();
  return ok();
}

class S3Environment : public ::testing::Environment {
 public:
  S3Environment(bool with_s3rver, bool with_proxy) : with_s3rver_(with_s3rver), with_proxy_(with_proxy) {}

  void SetUp() override {
    char tmpl[] = "/tmp/kvb-s3-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    start_radosgw();
    if (with_s3rver_) start_s3rver();
    if (with_proxy_) {
      if (rgw_.ok) {
        start_proxy();
      } else {
        proxy_.name = "proxy";
        proxy_.error = "not started, radosgw behind it is not running: " + rgw_.error;
      }
    }
  }

  void TearDown() override {
    if (proxy_pid_ > 0) {
      ::close(proxy_stdin_);
      ::kill(proxy_pid_, SIGTERM);
      ::waitpid(proxy_pid_, nullptr, 0);
    }
    ProcessSpec spec;
    spec.timeout = std::chrono::seconds(60);
    if (with_s3rver_) {
      spec.argv = {script("s3rver-server"), "stop", (dir_ / "s3rver").string()};
      (void)run_process(spec);
    }
    spec.argv = {script("radosgw-cluster"), "stop", (dir_ / "rgw").string()};
    (void)run_process(spec);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  bool restart() {
    ProcessSpec spec;
    spec.argv = {script("radosgw-cluster"), "restart-rgw", (dir_ / "rgw").string()};
    spec.timeout = std::chrono::seconds(120);
    auto r = run_process(spec);
    return r && r->exit_code == 0;
  }

  S3Server rgw_, s3rver_, proxy_;

 private:
  void start_radosgw() {
    rgw_.name = "radosgw";
    rgw_.bucket = "kvbtest";
    ProcessSpec spec;
    spec.argv = {script("radosgw-cluster"), "start", (dir_ / "rgw").string(), std::to_string(::getpid())};
    spec.timeout = std::chrono::seconds(240);
    auto r = run_process(spec);
    if (!r || r->exit_code != 0) {
      rgw_.error = "radosgw did not start: " + (r ? r->err + r->out : r.error().message) +
                   " (scripts/deps installs radosgw, ceph-mon and ceph-osd)";
      return;
    }
    rgw_.endpoint = field(r->out, "endpoint");
    rgw_.access_key = field(r->out, "access_key");
    rgw_.secret_key = field(r->out, "secret_key");
    if (auto st = create_bucket(rgw_); !st) {
      rgw_.error = "radosgw: cannot create bucket " + rgw_.bucket + ": " + st.error().message;
      return;
    }
    rgw_.ok = true;
  }

  void start_s3rver() {
    s3rver_.name = "s3rver";
    s3rver_.bucket = "kvbtest";
    s3rver_.access_key = "S3RVER";
    s3rver_.secret_key = "S3RVER";
    ProcessSpec spec;
    spec.argv = {script("s3rver-server"), "start", (dir_ / "s3rver").string(), s3rver_.bucket, std::to_string(::getpid())};
    spec.timeout = std::chrono::seconds(60);
    auto r = run_process(spec);
    if (!r || r->exit_code != 0) {
      s3rver_.error = "s3rver did not start: " + (r ? r->err : r.error().message) + " (scripts/deps installs it with npm)";
      return;
    }
    s3rver_.endpoint = field(r->out, "endpoint");
    s3rver_.ok = true;
  }

  void start_proxy() {
    proxy_ = rgw_;
    proxy_.name = "proxy";
    proxy_.ok = false;
    std::string port = rgw_.endpoint.substr(rgw_.endpoint.rfind(':') + 1);
    auto child = spawn_process({"/usr/bin/python3", script("fault_proxy.py"), port}, environment_with({}), dir_);
    if (!child) {
      proxy_.error = "fault proxy: " + child.error().message;
      return;
    }
    proxy_pid_ = child->pid;
    proxy_stdin_ = child->stdin_fd;
    ::close(child->stderr_fd);
    std::string line;
    char c;
    while (::read(child->stdout_fd, &c, 1) == 1 && c != '\n') line.push_back(c);
    ::close(child->stdout_fd);
    std::string p = field(line, "port");
    if (p.empty()) {
      proxy_.error = "fault proxy did not start";
      return;
    }
    proxy_.endpoint = "http://127.0.0.1:" + p;
    proxy_.ok = true;
  }

  bool with_s3rver_, with_proxy_;
  fs::path dir_;
  pid_t proxy_pid_ = -1;
  int proxy_stdin_ = -1;
};

S3Environment* g_env = nullptr;

const S3Server& checked(S3Server S3Environment::*member, const char* name) {
  static const S3Server none{name, "", "", "", "", false, "register_s3_servers() was not called"};
  if (!g_env) {
    ADD_FAILURE() << none.error;
    return none;
  }
  const S3Server& s = g_env->*member;
  if (!s.ok) ADD_FAILURE() << name << " is not running: " << s.error;
  return s;
}

std::string proxy_call(const std::string& method, const std::string& target, const std::string& body) {
  auto t = location::s3::HttpTransport::create(g_env->proxy_.endpoint, {});
  if (!t) return t.error().message;
  location::s3::HttpRequest req{method, target, {}, body, false};
  bool sent = false;
  auto r = (*t)->exchange(req, &sent);
  return r ? r->body : r.error().message;
}

}  // namespace

void register_s3_servers(bool with_s3rver, bool with_proxy) {
  g_env = new S3Environment(with_s3rver, with_proxy);
  ::testing::AddGlobalTestEnvironment(g_env);  // gtest owns it
}

const S3Server& radosgw() { return checked(&S3Environment::rgw_, "radosgw"); }
const S3Server& s3rver() { return checked(&S3Environment::s3rver_, "s3rver"); }
const S3Server& fault_proxy() { return checked(&S3Environment::proxy_, "the fault proxy"); }
bool restart_radosgw() { return g_env && g_env->restart(); }
std::string set_proxy_faults(const std::string& rules_json) { return proxy_call("PUT", "/__fault__/rules", rules_json); }
std::string proxy_stats() { return proxy_call("GET", "/__fault__/stats", ""); }

EnvVars s3_env(const S3Server& s) {
  return {{"AWS_ACCESS_KEY_ID", s.access_key},
          {"AWS_SECRET_ACCESS_KEY", s.secret_key},
          {"AWS_REGION", "us-east-1"},
          {"AWS_DEFAULT_REGION", "us-east-1"},
          {"AWS_ENDPOINT_URL", s.endpoint},
          {"AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/kvb-test-credentials"},
          {"AWS_CONFIG_FILE", "/nonexistent/kvb-test-config"}};
}

std::string s3_url(const S3Server& s, const std::string& prefix) { return "s3://" + s.bucket + "/" + prefix; }

ProcessResult run_aws(const S3Server& s, const std::vector<std::string>& args) {
  ProcessSpec spec;
  spec.argv = {"/usr/bin/aws", "--endpoint-url", s.endpoint};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env_overrides = s3_env(s);
  spec.timeout = std::chrono::seconds(120);
  spec.output_cap = 64 << 20;
  auto r = run_process(spec);
  if (!r) return ProcessResult{-1, 0, false, "", r.error().message};
  return *r;
}

}  // namespace kvb::testing
