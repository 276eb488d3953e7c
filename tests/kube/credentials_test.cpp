#include "common/time.h"
#include "kube/api_status.h"
#include "kube/client.h"
#include "kube/credentials.h"
#include "tests/support/test_api_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <thread>

namespace kvb::kube {
namespace {

using testing::TempDir;

// Writes an exec plugin script that counts its runs and prints `status_json`.
std::string make_plugin(const TempDir& dir, const std::string& status_json, int exit_code = 0,
                        const std::string& api = "client.authentication.k8s.io/v1") {
  std::string script = "#!/bin/sh\necho run >> " + (dir / "runs").string() +
                       "\nprintf '%s' \"$KUBERNETES_EXEC_INFO\" > " + (dir / "info").string() +
                       "\necho \"$1 $PLUGIN_ENV\" > " + (dir / "args").string() + "\ncat <<'JSON'\n" +
                       R"({"apiVersion":")" + api + R"(","kind":"ExecCredential","status":)" + status_json +
                       "}\nJSON\necho 'plugin stderr s3cr3t-plugin-token' >&2\nexit " + std::to_string(exit_code) +
                       "\n";
  dir.write("plugin.sh", script, 0755);
  return (dir / "plugin.sh").string();
}

int runs(const TempDir& dir) {
  std::ifstream in(dir / "runs");
  int n = 0;
  std::string line;
  while (std::getline(in, line)) ++n;
  return n;
}

RestConfig exec_config(const std::string& command, const std::string& api = "client.authentication.k8s.io/v1") {
  RestConfig rc;
  rc.cluster.server = "https://example:6443";
  rc.origin = "test-kubeconfig";
  ExecPluginConfig ex;
  ex.api_version = api;
  ex.command = command;
  ex.args = {"get-token"};
  ex.env = {{"PLUGIN_ENV", "from-kubeconfig"}};
  ex.interactive_mode = "Never";
  ex.provide_cluster_info = true;
  rc.user.exec = ex;
  return rc;
}

TEST(Credentials, StaticTokenAndBasicAuth) {
  RestConfig rc;
  rc.user.token = Secret("abc");
  CredentialProvider p(rc);
  auto m = p.get();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->authorization->reveal(), "Bearer abc");
  EXPECT_FALSE(p.refreshable());

  RestConfig basic;
  basic.user.username = "admin";
  basic.user.password = Secret("pw");
  CredentialProvider pb(basic);
  EXPECT_EQ(pb.get()->authorization->reveal(), "Basic YWRtaW46cHc=");
}

TEST(Credentials, ExecPluginTokenIsCachedUntilExpiry) {
  TempDir dir;
  auto future = format_rfc3339(std::chrono::system_clock::now() + std::chrono::hours(1));
  auto cmd = make_plugin(dir, R"({"token":"plugin-token-1","expirationTimestamp":")" + future + "\"}");
  CredentialProvider p(exec_config(cmd));
  for (int i = 0; i < 3; ++i) {
    auto m = p.get();
    ASSERT_TRUE(m) << m.error().describe();
    EXPECT_EQ(m->authorization->reveal(), "Bearer plugin-token-1");
  }
  EXPECT_EQ(runs(dir), 1);
  EXPECT_TRUE(p.refreshable());
  p.invalidate();
  ASSERT_TRUE(p.get());
  EXPECT_EQ(runs(dir), 2);

  std::ifstream info(dir / "info");
  std::string info_json((std::istreambuf_iterator<char>(info)), {});
  EXPECT_NE(info_json.find(R"("kind":"ExecCredential")"), std::string::npos) << info_json;
  EXPECT_NE(info_json.find(R"("interactive":false)"), std::string::npos) << info_json;
  EXPECT_NE(info_json.find("https://example:6443"), std::string::npos) << "provideClusterInfo: " << info_json;
  std::ifstream args(dir / "args");
  std::string a;
  std::getline(args, a);
  EXPECT_EQ(a, "get-token from-kubeconfig");
}

TEST(Credentials, ExpiredPluginTokenIsRefreshedOnEveryUse) {
  TempDir dir;
  auto past = format_rfc3339(std::chrono::system_clock::now() - std::chrono::minutes(1));
  auto cmd = make_plugin(dir, R"({"token":"t","expirationTimestamp":")" + past + "\"}",
                         0, "client.authentication.k8s.io/v1beta1");
  CredentialProvider p(exec_config(cmd, "client.authentication.k8s.io/v1beta1"));
  ASSERT_TRUE(p.get());
  ASSERT_TRUE(p.get());
  EXPECT_EQ(runs(dir), 2);
  EXPECT_FALSE(p.cached_if_fresh());
}

TEST(Credentials, ExecPluginClientCertificate) {
  TempDir dir;
  auto cmd = make_plugin(dir, R"({"clientCertificateData":"CERT","clientKeyData":"KEY"})");
  CredentialProvider p(exec_config(cmd));
  auto m = p.get();
  ASSERT_TRUE(m) << m.error().describe();
  EXPECT_FALSE(m->authorization);
  EXPECT_EQ(m->client_certificate_pem, "CERT");
  EXPECT_EQ(m->client_key_pem.reveal(), "KEY");
  EXPECT_GT(m->certificate_generation, 0u);
}

TEST(Credentials, FailingPluginErrorNamesItAndHidesSecrets) {
  TempDir dir;
  auto cmd = make_plugin(dir, R"({"token":"s3cr3t-plugin-token"})", 7);
  CredentialProvider p(exec_config(cmd));
  auto m = p.get();
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find(cmd), std::string::npos) << m.error().message;
  EXPECT_NE(m.error().message.find("exited with code 7"), std::string::npos) << m.error().message;
}

TEST(Credentials, PluginOutputIsValidated) {
  TempDir dir;
  auto cmd = make_plugin(dir, R"({"token":"x"})", 0, "client.authentication.k8s.io/v1beta1");
  CredentialProvider p(exec_config(cmd));  // asks for v1, gets v1beta1
  auto m = p.get();
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("does not match"), std::string::npos) << m.error().message;
  EXPECT_EQ(m.error().message.find("\"x\""), std::string::npos);

  auto missing = exec_config((dir / "no-such-plugin").string());
  missing.user.exec->install_hint = "install it with: apt install the-plugin";
  CredentialProvider pm(missing);
  auto mm = pm.get();
  ASSERT_FALSE(mm);
  EXPECT_NE(mm.error().message.find("install it with"), std::string::npos) << mm.error().message;
}

TEST(Credentials, TokenFileIsReReadWhenItChanges) {
  TempDir dir;
  dir.write("token", "first\n");
  RestConfig rc;
  rc.user.token_file = dir / "token";
  CredentialProvider p(rc);
  EXPECT_EQ(p.get()->authorization->reveal(), "Bearer first");
  dir.write("token", "second-longer\n");
  EXPECT_EQ(p.get()->authorization->reveal(), "Bearer second-longer");
  // A token file that disappears keeps the last good token (rotation in progress).
  std::filesystem::remove(dir / "token");
  EXPECT_EQ(p.get()->authorization->reveal(), "Bearer second-longer");
}

// Issue 13 item 9: a Client whose user has an exec credential plugin crashed on
// its second call (the CredentialProvider was freed while the runtime still
// used it). Many calls from several threads, through token expiry (the plugin
// hands out tokens whose expirationTimestamp has already passed, so calls keep
// re-running it) and through a 401 that forces a refresh, under ASan in CI.
TEST(Credentials, ExecPluginThroughClientSurvivesManyCallsAndRefreshes) {
  TempDir dir;
  // Run n prints token "tok-n". Odd runs expire at once; even runs an hour later.
  std::string script = "#!/bin/sh\necho run >> " + (dir / "runs").string() +
                       "\nn=$(wc -l < " + (dir / "runs").string() + ")\n"
                       "if [ $((n % 2)) -eq 1 ]; then exp=" + format_rfc3339(std::chrono::system_clock::now() - std::chrono::minutes(5)) +
                       "; else exp=" + format_rfc3339(std::chrono::system_clock::now() + std::chrono::hours(1)) + "; fi\n"
                       "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
                       "\"status\":{\"token\":\"tok-%s\",\"expirationTimestamp\":\"%s\"}}' \"$n\" \"$exp\"\n";
  dir.write("plugin.sh", script, 0755);
  testing::TestApiServer server;
  std::atomic<int> rejected{0};
  server.set_handler([&](testing::ServerRequest&& req, std::shared_ptr<testing::Responder> r) {
    auto auth = req.header("Authorization");
    // Token 2, the first long-lived one, is "revoked" by the server: the client
    // must run the plugin again after the 401 (run 3 expires at once, run 4 lasts).
    if (auth == "Bearer tok-2") {
      ++rejected;
      r->respond(testing::TestApiServer::json(401, status_json(401, "Unauthorized", "token revoked")));
      return;
    }
    if (auth.rfind("Bearer tok-", 0) != 0) {
      r->respond(testing::TestApiServer::json(401, status_json(401, "Unauthorized", "no token")));
      return;
    }
    r->respond(testing::TestApiServer::json(200, R"({"major":"1","minor":"31","gitVersion":"v1.31.0"})"));
  });
  RestConfig rc = server.rest_config();
  rc.user = AuthInfo{};
  ExecPluginConfig ex;
  ex.api_version = "client.authentication.k8s.io/v1";
  ex.command = (dir / "plugin.sh").string();
  ex.interactive_mode = "Never";
  rc.user.exec = ex;
  auto client = Client::create(rc);
  ASSERT_TRUE(client) << client.error().describe();
  constexpr int kThreads = 4, kCalls = 40;
  std::atomic<int> ok{0};
  std::vector<std::string> failures;
  std::mutex mu;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kCalls; ++i) {
        auto v = (*client)->server_version();
        if (v) {
          ++ok;
        } else {
          std::lock_guard lk(mu);
          failures.push_back(v.error().describe());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kThreads * kCalls) << (failures.empty() ? "" : failures.front());
  // The plugin ran more than once (expired tokens and the 401 forced refreshes)...
  EXPECT_GE(runs(dir), 4);
  EXPECT_GE(rejected.load(), 1);
  // ...and once the long-lived token is in hand, calls reuse it.
  int before = runs(dir);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE((*client)->server_version());
  EXPECT_LE(runs(dir) - before, 2);
}

}  // namespace
}  // namespace kvb::kube
