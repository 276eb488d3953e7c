#include "common/base64.h"
#include "kube/config.h"
#include "tests/support/test_api_server.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace kvb::kube {
namespace {

using testing::TempDir;

// Runs the real kubectl (argv, no shell); skips the test when it is absent.
bool kubectl(const std::vector<std::string>& args) {
  ProcessSpec spec;
  spec.argv = {"kubectl"};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  auto r = run_process(spec);
  return r && r->exit_code == 0;
}

bool have_kubectl() {
  ProcessSpec spec;
  spec.argv = {"kubectl", "version", "--client"};
  auto r = run_process(spec);
  return r && r->exit_code == 0;
}

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) ::setenv(name_, old_->c_str(), 1);
    else ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

constexpr const char* kCaPem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

TEST(KubeConfig, LoadsWhatKubectlWrites) {
  if (!have_kubectl()) GTEST_SKIP() << "kubectl is not installed";
  TempDir dir;
  dir.write("ca.crt", kCaPem);
  std::string kc = (dir / "config").string();
  ASSERT_TRUE(kubectl({"config", "--kubeconfig=" + kc, "set-cluster", "prod-cluster", "--server=https://10.0.0.1:6443",
                       "--certificate-authority=" + (dir / "ca.crt").string(), "--embed-certs=true"}));
  ASSERT_TRUE(kubectl({"config", "--kubeconfig=" + kc, "set-credentials", "admin", "--token=tok-123456"}));
  ASSERT_TRUE(kubectl({"config", "--kubeconfig=" + kc, "set-context", "prod", "--cluster=prod-cluster",
                       "--user=admin", "--namespace=vms"}));
  ASSERT_TRUE(kubectl({"config", "--kubeconfig=" + kc, "use-context", "prod"}));
  ASSERT_TRUE(kubectl({"config", "--kubeconfig=" + kc, "set", "clusters.prod-cluster.tls-server-name", "api.internal"}));

  auto rc = load_config(LoadOptions{kc, "", "", "/nonexistent"});
  ASSERT_TRUE(rc) << rc.error().describe();
  EXPECT_EQ(rc->cluster.server, "https://10.0.0.1:6443");
  EXPECT_EQ(rc->cluster.ca_pem, kCaPem);
  EXPECT_EQ(rc->cluster.tls_server_name, "api.internal");
  EXPECT_EQ(rc->user.token.reveal(), "tok-123456");
  EXPECT_EQ(rc->namespace_name, "vms");
  EXPECT_EQ(rc->context_name, "prod");
}

TEST(KubeConfig, LoadsKubectlClientCertificatesAndExecPlugins) {
  if (!have_kubectl()) GTEST_SKIP() << "kubectl is not installed";
  TempDir dir;
  dir.write("client.crt", "CERT-PEM");
  dir.write("client.key", "KEY-PEM");
  std::string kc = (dir / "config").string();
  ASSERT_TRUE(kubectl({"config", "--kubeconfig=" + kc, "set-cluster", "c", "--server=https://h:1"}));
  ASSERT_TRUE(kubectl({"config", "--kubeconfig=" + kc, "set-credentials", "certuser",
                       "--client-certificate=" + (dir / "client.crt").string(),
                       "--client-key=" + (dir / "client.key").string()}));
  ASSERT_TRUE(kubectl({"config", "--kubeconfig=" + kc, "set-credentials", "execuser", "--exec-command=/usr/bin/aws",
                       "--exec-api-version=client.authentication.k8s.io/v1beta1", "--exec-arg=eks",
                       "--exec-arg=get-token", "--exec-env=AWS_PROFILE=prod"}));
  ASSERT_TRUE(kubectl({"config", "--kubeconfig=" + kc, "set-context", "a", "--cluster=c", "--user=certuser"}));
  ASSERT_TRUE(kubectl({"config", "--kubeconfig=" + kc, "set-context", "b", "--cluster=c", "--user=execuser"}));

  auto a = load_kubeconfig_files({kc}, "a", false);
  ASSERT_TRUE(a) << a.error().describe();
  EXPECT_EQ(a->user.client_certificate_pem, "CERT-PEM");
  EXPECT_EQ(a->user.client_key_pem.reveal(), "KEY-PEM");
  EXPECT_EQ(a->namespace_name, "default");

  auto b = load_kubeconfig_files({kc}, "b", false);
  ASSERT_TRUE(b) << b.error().describe();
  ASSERT_TRUE(b->user.exec);
  EXPECT_EQ(b->user.exec->command, "/usr/bin/aws");
  EXPECT_EQ(b->user.exec->args, (std::vector<std::string>{"eks", "get-token"}));
  ASSERT_EQ(b->user.exec->env.size(), 1u);
  EXPECT_EQ(b->user.exec->env[0].first, "AWS_PROFILE");
  EXPECT_EQ(b->user.exec->api_version, "client.authentication.k8s.io/v1beta1");
}

TEST(KubeConfig, MergedKubeconfigListIsFirstWins) {
  if (!have_kubectl()) GTEST_SKIP() << "kubectl is not installed";
  TempDir dir;
  std::string f1 = (dir / "one").string(), f2 = (dir / "two").string();
  ASSERT_TRUE(kubectl({"config", "--kubeconfig=" + f1, "set-cluster", "shared", "--server=https://first:1"}));
  ASSERT_TRUE(kubectl({"config", "--kubeconfig=" + f1, "set-credentials", "u", "--token=first-token"}));
  ASSERT_TRUE(kubectl({"config", "--kubeconfig=" + f1, "set-context", "ctx1", "--cluster=shared", "--user=u"}));
  ASSERT_TRUE(kubectl({"config", "--kubeconfig=" + f2, "set-cluster", "shared", "--server=https://second:2"}));
  ASSERT_TRUE(kubectl({"config", "--kubeconfig=" + f2, "set-cluster", "only2", "--server=https://only2:3"}));
  ASSERT_TRUE(kubectl({"config", "--kubeconfig=" + f2, "set-credentials", "u", "--token=second-token"}));
  ASSERT_TRUE(kubectl({"config", "--kubeconfig=" + f2, "set-context", "ctx2", "--cluster=only2", "--user=u",
                       "--namespace=two"}));
  ASSERT_TRUE(kubectl({"config", "--kubeconfig=" + f2, "use-context", "ctx2"}));

  // f1 sets no current-context, so f2's applies; the user "u" comes from f1.
  ScopedEnv env("KUBECONFIG", f1 + ":" + (dir / "missing").string() + ":" + f2);
  auto rc = load_config(LoadOptions{});
  ASSERT_TRUE(rc) << rc.error().describe();
  EXPECT_EQ(rc->context_name, "ctx2");
  EXPECT_EQ(rc->cluster.server, "https://only2:3");
  EXPECT_EQ(rc->user.token.reveal(), "first-token");
  EXPECT_EQ(rc->namespace_name, "two");

  auto ctx1 = load_config(LoadOptions{"", "ctx1", "override-ns"});
  ASSERT_TRUE(ctx1) << ctx1.error().describe();
  EXPECT_EQ(ctx1->cluster.server, "https://first:1");  // "shared" from f1 wins
  EXPECT_EQ(ctx1->namespace_name, "override-ns");

  // And kubectl itself agrees on the merged view.
  ProcessSpec spec;
  spec.argv = {"kubectl", "config", "view", "-o", "jsonpath={.clusters[?(@.name==\"shared\")].cluster.server}"};
  auto kv = run_process(spec);
  ASSERT_TRUE(kv);
  EXPECT_EQ(kv->out, "https://first:1");
}

TEST(KubeConfig, RelativePathsAreRelativeToTheFile) {
  TempDir dir;
  dir.write("sub/certs/ca.pem", kCaPem);
  dir.write("sub/token", "from-file\n");
  dir.write("sub/config", R"(apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://h:6443", certificate-authority: certs/ca.pem}
users:
- name: u
  user: {tokenFile: token}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
)");
  auto rc = load_kubeconfig_files({dir / "sub/config"}, "", false);
  ASSERT_TRUE(rc) << rc.error().describe();
  EXPECT_EQ(rc->cluster.ca_pem, kCaPem);
  EXPECT_EQ(rc->user.token_file, dir / "sub/token");
}

struct BadConfig {
  const char* name;
  const char* yaml;
  const char* expected;  // substring of the error message
};

void PrintTo(const BadConfig& b, std::ostream* os) { *os << b.name; }

class KubeConfigErrors : public ::testing::TestWithParam<BadConfig> {};

TEST_P(KubeConfigErrors, NameFileFieldAndValue) {
  TempDir dir;
  dir.write("config", GetParam().yaml);
  auto rc = load_kubeconfig_files({dir / "config"}, "", false);
  ASSERT_FALSE(rc) << GetParam().name;
  EXPECT_EQ(rc.error().code, Errc::kConfig);
  EXPECT_NE(rc.error().message.find((dir / "config").string()), std::string::npos) << rc.error().message;
  EXPECT_NE(rc.error().message.find(GetParam().expected), std::string::npos) << rc.error().message;
  EXPECT_EQ(rc.error().message.find("s3cr3t-t0ken"), std::string::npos) << "token leaked: " << rc.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    All, KubeConfigErrors,
    ::testing::Values(
        BadConfig{"malformed", "clusters: [\n  - name: x\n   bad", "invalid YAML"},
        BadConfig{"not a map", "- a\n- b\n", "top level must be a mapping"},
        BadConfig{"no current context", "clusters: []\n", "no context selected"},
        BadConfig{"unknown context", "current-context: nope\n", "context \"nope\" does not exist"},
        BadConfig{"missing cluster",
                  "current-context: x\ncontexts: [{name: x, context: {cluster: gone, user: u}}]\n",
                  "cluster \"gone\" is not defined"},
        BadConfig{"missing server",
                  "current-context: x\nclusters: [{name: c, cluster: {}}]\n"
                  "contexts: [{name: x, context: {cluster: c}}]\n",
                  "missing field server"},
        BadConfig{"bad scheme",
                  "current-context: x\nclusters: [{name: c, cluster: {server: 'ftp://h'}}]\n"
                  "contexts: [{name: x, context: {cluster: c}}]\n",
                  "must start with https://"},
        BadConfig{"missing CA file",
                  "current-context: x\nclusters: [{name: c, cluster: {server: 'https://h', certificate-authority: "
                  "/nonexistent/ca.crt}}]\ncontexts: [{name: x, context: {cluster: c}}]\n",
                  "/nonexistent/ca.crt"},
        BadConfig{"bad base64",
                  "current-context: x\nclusters: [{name: c, cluster: {server: 'https://h', "
                  "certificate-authority-data: '!!!'}}]\ncontexts: [{name: x, context: {cluster: c}}]\n",
                  "certificate-authority-data is not valid base64"},
        BadConfig{"bad bool",
                  "current-context: x\nclusters: [{name: c, cluster: {server: 'https://h', "
                  "insecure-skip-tls-verify: maybe}}]\ncontexts: [{name: x, context: {cluster: c}}]\n",
                  "\"maybe\""},
        BadConfig{"two auth methods",
                  "current-context: x\nclusters: [{name: c, cluster: {server: 'https://h'}}]\n"
                  "users: [{name: u, user: {token: s3cr3t-t0ken, username: a, password: b}}]\n"
                  "contexts: [{name: x, context: {cluster: c, user: u}}]\n",
                  "more than one authentication method"},
        BadConfig{"cert without key",
                  "current-context: x\nclusters: [{name: c, cluster: {server: 'https://h'}}]\n"
                  "users: [{name: u, user: {client-certificate-data: Q0VSVA==}}]\n"
                  "contexts: [{name: x, context: {cluster: c, user: u}}]\n",
                  "must be given together"},
        BadConfig{"exec without interactiveMode",
                  "current-context: x\nclusters: [{name: c, cluster: {server: 'https://h'}}]\n"
                  "users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: x}}}]\n"
                  "contexts: [{name: x, context: {cluster: c, user: u}}]\n",
                  "interactiveMode is required"},
        BadConfig{"exec bad api version",
                  "current-context: x\nclusters: [{name: c, cluster: {server: 'https://h'}}]\n"
                  "users: [{name: u, user: {exec: {apiVersion: v0, command: x}}}]\n"
                  "contexts: [{name: x, context: {cluster: c, user: u}}]\n",
                  "unsupported \"v0\""},
        BadConfig{"auth provider",
                  "current-context: x\nclusters: [{name: c, cluster: {server: 'https://h'}}]\n"
                  "users: [{name: u, user: {auth-provider: {name: gcp}}}]\n"
                  "contexts: [{name: x, context: {cluster: c, user: u}}]\n",
                  "auth-provider"},
        BadConfig{"entry without name", "clusters: [{cluster: {server: 'https://h'}}]\n", "missing field name"}),
    [](const auto& param_info) {
      std::string n = param_info.param.name;
      for (char& c : n)
        if (!isalnum(static_cast<unsigned char>(c))) c = '_';
      return n;
    });

TEST(KubeConfig, ExplicitMissingFileIsAnError) {
  auto rc = load_config(LoadOptions{"/nonexistent/kubeconfig", "", "", "/nonexistent"});
  ASSERT_FALSE(rc);
  EXPECT_NE(rc.error().message.find("/nonexistent/kubeconfig"), std::string::npos);
}

TEST(KubeConfig, InClusterConfigFromServiceAccountFiles) {
  TempDir dir;
  dir.write("token", "sa-token\n");
  dir.write("ca.crt", kCaPem);
  dir.write("namespace", "kvbackup-system");
  ScopedEnv host("KUBERNETES_SERVICE_HOST", "10.96.0.1");
  ScopedEnv port("KUBERNETES_SERVICE_PORT", "443");
  auto rc = load_in_cluster_config(dir.path());
  ASSERT_TRUE(rc) << rc.error().describe();
  EXPECT_TRUE(rc->in_cluster);
  EXPECT_EQ(rc->cluster.server, "https://10.96.0.1:443");
  EXPECT_EQ(rc->cluster.ca_pem, kCaPem);
  EXPECT_EQ(rc->user.token_file, dir / "token");
  EXPECT_EQ(rc->namespace_name, "kvbackup-system");

  ScopedEnv host6("KUBERNETES_SERVICE_HOST", "fd00::1");
  auto rc6 = load_in_cluster_config(dir.path());
  ASSERT_TRUE(rc6);
  EXPECT_EQ(rc6->cluster.server, "https://[fd00::1]:443");
}

TEST(KubeConfig, NoConfigurationAnywhereExplainsWhere) {
  TempDir home;
  ScopedEnv h("HOME", home.path().string());
  ScopedEnv k("KUBECONFIG", "");
  ::unsetenv("KUBECONFIG");
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  auto rc = load_config(LoadOptions{"", "", "", "/nonexistent"});
  ASSERT_FALSE(rc);
  EXPECT_NE(rc.error().message.find(".kube/config"), std::string::npos) << rc.error().message;
  EXPECT_NE(rc.error().message.find("KUBERNETES_SERVICE_HOST"), std::string::npos) << rc.error().message;
}

}  // namespace
}  // namespace kvb::kube
