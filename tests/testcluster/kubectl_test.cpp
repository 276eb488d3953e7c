// The test cluster driven by the real kubectl: it must not be able to tell.
// Skipped (with a message) where kubectl is not installed.
#include "common/atomic_file.h"
#include "kube/object.h"
#include "kube/watch.h"
#include "tests/support/test_cluster.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <sys/wait.h>

namespace kvb::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

const char* kScenario = R"(
kubevirtVersion: "1.8"
fsFreezePollInterval: 200ms
namespaces:
  - name: prod
    vms:
      - {name: db, labels: {app: db}}
      - {name: web, labels: {app: web}}
    pods:
      - name: tools
        containers: [{name: shell}]
        exec:
          - {pattern: "^false-script", exitCode: 42, stderr: "scripted failure\n"}
  - name: dev
    vms:
      - {name: sandbox}
)";

class Kubectl : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kubectl_available()) GTEST_SKIP() << "kubectl is not installed; skipping the kubectl compatibility tests";
    tc_ = std::make_unique<TestCluster>(kScenario);
  }
  ProcessResult run(std::vector<std::string> args, const std::string& in = {}) {
    auto r = run_kubectl(tc_->kubeconfig(), args, in);
    EXPECT_TRUE(r.has_value());
    return r ? *r : ProcessResult{};
  }
  std::unique_ptr<TestCluster> tc_;
};

TEST_F(Kubectl, GetsVmsVmisAndPodsAcrossNamespacesAndByLabel) {
  auto vms = run({"get", "vm", "-A", "-o", "name"});
  ASSERT_EQ(vms.exit_code, 0) << vms.err;
  EXPECT_THAT(vms.out, HasSubstr("virtualmachine.kubevirt.io/db"));
  EXPECT_THAT(vms.out, HasSubstr("virtualmachine.kubevirt.io/sandbox"));
  auto vmis = run({"get", "vmi", "-n", "prod", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}"});
  ASSERT_EQ(vmis.exit_code, 0) << vmis.err;
  EXPECT_EQ(vmis.out, "web");
  auto pods = run({"get", "pods", "-A", "-l", "kubevirt.io=virt-launcher", "-o", "jsonpath={.items[*].metadata.labels.vm\\.kubevirt\\.io/name}"});
  ASSERT_EQ(pods.exit_code, 0) << pods.err;
  EXPECT_THAT(pods.out, HasSubstr("db"));
  EXPECT_THAT(pods.out, HasSubstr("sandbox"));
  auto describe = run({"describe", "vmi", "-n", "prod", "db"});
  ASSERT_EQ(describe.exit_code, 0) << describe.err;
  EXPECT_THAT(describe.out, HasSubstr("AgentConnected"));
  auto describe_pod = run({"describe", "pod", "-n", "prod", tc_->launcher_pod("prod", "db")});
  ASSERT_EQ(describe_pod.exit_code, 0) << describe_pod.err;
  EXPECT_THAT(describe_pod.out, HasSubstr("pre.hook.backup.velero.io/command"));
}

TEST_F(Kubectl, AppliesAndReadsAStorkRule) {
  std::string rule = R"(apiVersion: stork.libopenstorage.org/v1alpha1
kind: Rule
metadata:
  name: presnap-rule
  namespace: prod
rules:
  - podSelector:
      app: mysql
    container: mysql
    actions:
    - type: command
      background: true
      value: mysql --user=root -Bse 'flush tables with read lock;system ${WAIT_CMD};'
)";
  tc_->dir().write("rule.yaml", rule);
  auto apply = run({"apply", "-f", (tc_->dir() / "rule.yaml").string()});
  ASSERT_EQ(apply.exit_code, 0) << apply.err;
  EXPECT_THAT(apply.out, HasSubstr("rule.stork.libopenstorage.org/presnap-rule created"));
  auto again = run({"apply", "-f", (tc_->dir() / "rule.yaml").string()});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  auto get = run({"get", "rules.stork.libopenstorage.org", "-n", "prod", "presnap-rule", "-o", "jsonpath={.rules[0].actions[0].value}"});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(get.out, "mysql --user=root -Bse 'flush tables with read lock;system ${WAIT_CMD};'");
  auto del = run({"delete", "-f", (tc_->dir() / "rule.yaml").string()});
  EXPECT_EQ(del.exit_code, 0) << del.err;
}

TEST_F(Kubectl, ExecVirtFreezerFreezesTheGuest) {
  std::string pod = tc_->launcher_pod("prod", "db");
  auto r = run({"exec", "-n", "prod", pod, "-c", "compute", "--", "/usr/bin/virt-freezer", "--freeze", "--name", "db",
                "--namespace", "prod"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("Operation completed successfully"));
  EXPECT_EQ(tc_->events("Freeze", "db").size(), 1u);
  // fsFreezeStatus follows on the next poll of the guest agent.
  auto vmi = kube::wait_for_object(
      tc_->client(), {"kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance", true}, "prod", "db",
      [](const json::object* o) { return o && kube::str_at(*o, {"status", "fsFreezeStatus"}) == "frozen"; }, 10s);
  ASSERT_TRUE(vmi);
  auto jp = run({"get", "vmi", "-n", "prod", "db", "-o", "jsonpath={.status.fsFreezeStatus}"});
  EXPECT_EQ(jp.out, "frozen");
}

TEST_F(Kubectl, ExecReportsExitCodes) {
  auto scripted = run({"exec", "-n", "prod", "tools", "--", "false-script"});
  EXPECT_EQ(scripted.exit_code, 42) << scripted.err;
  EXPECT_THAT(scripted.err, HasSubstr("scripted failure"));
  auto shell = run({"exec", "-n", "prod", "tools", "--", "sh", "-c", "echo from-a-real-shell; exit 3"});
  EXPECT_EQ(shell.exit_code, 3);
  EXPECT_THAT(shell.out, HasSubstr("from-a-real-shell"));
  auto stdin_exec = run({"exec", "-i", "-n", "prod", "tools", "--", "cat"}, "piped through stdin");
  EXPECT_EQ(stdin_exec.exit_code, 0) << stdin_exec.err;
  EXPECT_EQ(stdin_exec.out, "piped through stdin");
}

TEST(TestClusterBinary, WritesAKubeconfigServesAndStopsOnSigterm) {
  const char* build = std::getenv("KVB_BUILD_DIR");
  std::filesystem::path bin = std::filesystem::path(build ? build : KVB_DEFAULT_BUILD_DIR) / "kvbackup-testcluster";
  if (!std::filesystem::exists(bin)) GTEST_SKIP() << bin << " not built";
  TempDir dir;
  dir.write("scenario.yaml", kScenario);
  auto kc = dir / "kubeconfig";
  auto env = environment_with({});
  auto p = spawn_process({bin.string(), "--scenario", (dir / "scenario.yaml").string(), "--kubeconfig-out", kc.string(),
                          "--state-dir", (dir / "state").string()},
                         env, dir.path());
  ASSERT_TRUE(p);
  ::close(p->stdin_fd);
  // The first stdout line says it is ready; the kubeconfig exists by then.
  std::string line;
  char ch;
  while (::read(p->stdout_fd, &ch, 1) == 1 && ch != '\n') line += ch;
  EXPECT_THAT(line, HasSubstr("ready at https://127.0.0.1:"));
  ASSERT_TRUE(std::filesystem::exists(kc));
  auto rc = kube::load_config(kube::LoadOptions{kc.string(), "", "", "/nonexistent"});
  ASSERT_TRUE(rc) << rc.error().describe();
  auto client = kube::Client::create(*rc);
  ASSERT_TRUE(client);
  kube::HttpRequest ready;
  ready.target = "/readyz";
  auto r = (*client)->request(ready);
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(r->body, "ok");
  EXPECT_TRUE((*client)->list({"kubevirt.io", "v1", "virtualmachines", "VirtualMachine", true}, "prod"));
  client->reset();
  ::kill(p->pid, SIGTERM);
  int status = 0;
  ::waitpid(p->pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  ::close(p->stdout_fd);
  ::close(p->stderr_fd);
}

TEST(TestClusterBinary, BadScenarioIsAClearErrorWithExitCode2) {
  const char* build = std::getenv("KVB_BUILD_DIR");
  std::filesystem::path bin = std::filesystem::path(build ? build : KVB_DEFAULT_BUILD_DIR) / "kvbackup-testcluster";
  if (!std::filesystem::exists(bin)) GTEST_SKIP() << bin << " not built";
  TempDir dir;
  dir.write("bad.yaml", "namespaces:\n  - name: prod\n    vms:\n      - name: db\n        agent: sometimes\n");
  ProcessSpec spec;
  spec.argv = {bin.string(), "--scenario", (dir / "bad.yaml").string()};
  auto r = run_process(spec);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->exit_code, 2);
  EXPECT_THAT(r->err, HasSubstr("bad.yaml: namespaces[0].vms[0].agent: \"sometimes\" is not one of connected, none, unresponsive, vss10s"));
}

}  // namespace
}  // namespace kvb::testing
