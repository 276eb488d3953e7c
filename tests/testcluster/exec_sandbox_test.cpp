// Exec in the test cluster runs in the container's own file-system view
// (testcluster/exec_sandbox.h, issue 15 item 12): a Stork-style compound
// `sh -c '/usr/bin/virt-freezer ... && echo ok'` really freezes the guest,
// /usr/bin/virt-freezer is an executable there, the host's files are not
// visible, a missing command exits 127 with the shell's message, stdin and exit
// codes flow over the WebSocket, and kubectl sees the same. Also measures what
// a sandboxed exec costs next to the in-process virt-freezer fast path.
#include "tests/support/test_cluster.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>

namespace kvb::testing {
namespace {
using ::testing::HasSubstr;
using namespace std::chrono_literals;

const char* kScenario = R"(
kubevirtVersion: "1.8"
namespaces:
  - name: prod
    vms:
      - {name: db}
    pods:
      - name: tools
        containers: [{name: shell}]
)";

const char* kCompoundFreeze = "/usr/bin/virt-freezer --freeze --name db --namespace prod && echo ok";

TEST(ExecSandbox, ACompoundShellFreezeRunsVirtFreezerAndReallyFreezesTheGuest) {
  TestCluster tc(kScenario);
  std::string pod = tc.launcher_pod("prod", "db");
  auto r = tc.exec("prod", pod, "compute", {"sh", "-c", kCompoundFreeze});
  ASSERT_TRUE(r.status) << r.status.error().message;
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "ok\n");
  EXPECT_THAT(r.err, HasSubstr("Operation completed successfully"));
  EXPECT_TRUE(tc.vm_state("prod", "db").at("frozen").as_bool()) << "the oracle says the guest is frozen";
  EXPECT_EQ(tc.events("Freeze", "db").size(), 1u);
  // Thawed the same way; a failing virt-freezer stops the `&&` chain with its exit code.
  auto thaw = tc.exec("prod", pod, "compute", {"sh", "-c", "virt-freezer --unfreeze --name db --namespace prod && echo thawed"});
  EXPECT_EQ(thaw.exit_code, 0) << thaw.err;
  EXPECT_EQ(thaw.out, "thawed\n");
  EXPECT_FALSE(tc.vm_state("prod", "db").at("frozen").as_bool());
  auto wrong = tc.exec("prod", pod, "compute", {"sh", "-c", "virt-freezer --freeze --name other --namespace prod && echo ok"});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_EQ(wrong.out, "");
  EXPECT_THAT(wrong.err, HasSubstr("not found in this launcher"));
  EXPECT_FALSE(tc.vm_state("prod", "db").at("frozen").as_bool());
}

TEST(ExecSandbox, TheContainerSeesItsImageAndNotTheHost) {
  TestCluster tc(kScenario);
  std::string pod = tc.launcher_pod("prod", "db");
  auto x = tc.exec("prod", pod, "compute", {"test", "-x", "/usr/bin/virt-freezer"});
  EXPECT_EQ(x.exit_code, 0) << x.err;
  auto host = tc.exec("prod", pod, "compute", {"sh", "-c", "cat /etc/hostname; ls /"});
  EXPECT_EQ(host.exit_code, 0) << host.err;
  EXPECT_THAT(host.out, HasSubstr(pod + "\n")) << "the container's hostname is its pod's";
  std::ifstream f("/etc/hostname");
  std::string host_name;
  std::getline(f, host_name);
  if (!host_name.empty() && host_name != pod) {
    EXPECT_THAT(host.out, ::testing::Not(HasSubstr(host_name)));
  }
  EXPECT_THAT(host.out, ::testing::Not(HasSubstr("home")));
  EXPECT_THAT(host.out, ::testing::Not(HasSubstr("work")));
  for (const char* hidden : {"/work", "/home", "/etc/shadow", tc.dir().path().c_str()}) {
    auto ls = tc.exec("prod", pod, "compute", {"ls", hidden});
    EXPECT_NE(ls.exit_code, 0) << hidden << " is visible: " << ls.out;
  }
  // The host's name for itself is not the container's.
  auto name = tc.exec("prod", pod, "compute", {"hostname"});
  EXPECT_EQ(name.out, pod + "\n");
  // Files a command writes stay in its container (its /root), not on the host's paths.
  auto write = tc.exec("prod", "tools", "shell", {"sh", "-c", "echo kept > note && cat /root/note && pwd"});
  EXPECT_EQ(write.exit_code, 0) << write.err;
  EXPECT_EQ(write.out, "kept\n/root\n");
  auto other = tc.exec("prod", pod, "compute", {"sh", "-c", "cat /root/note"});
  EXPECT_NE(other.exit_code, 0) << "another container sees its own /root";
}

TEST(ExecSandbox, AMissingCommandExits127WithTheShellsMessageAndStdinFlows) {
  TestCluster tc(kScenario);
  auto r = tc.exec("prod", "tools", "shell", {"sh", "-c", "no-such-command --flag"});
  ASSERT_TRUE(r.status) << r.status.error().message;
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_THAT(r.err, HasSubstr("no-such-command: not found"));
  auto bare = tc.exec("prod", "tools", "shell", {"no-such-command"});
  EXPECT_FALSE(bare.status) << "a bare missing executable is the runtime's error, as the kubelet reports it";
  if (!bare.status) {
    EXPECT_THAT(bare.status.error().message, HasSubstr("executable file not found in $PATH"));
  }
  auto code = tc.exec("prod", "tools", "shell", {"sh", "-c", "echo out; echo err >&2; exit 7"});
  EXPECT_EQ(code.exit_code, 7);
  EXPECT_EQ(code.out, "out\n");
  EXPECT_EQ(code.err, "err\n");
  auto killed = tc.exec("prod", "tools", "shell", {"sh", "-c", "kill -TERM $$"});
  EXPECT_EQ(killed.exit_code, 128 + 15) << killed.err;
}

TEST(ExecSandbox, KubectlExecRunsTheCompoundFreezeAndCannotSeeTheHost) {
  TestCluster tc(kScenario);
  std::string pod = tc.launcher_pod("prod", "db");
  auto r = run_kubectl(tc.kubeconfig(), {"exec", "-n", "prod", pod, "-c", "compute", "--", "sh", "-c", kCompoundFreeze});
  ASSERT_TRUE(r) << "kubectl is required";
  EXPECT_EQ(r->exit_code, 0) << r->err;
  EXPECT_EQ(r->out, "ok\n");
  EXPECT_TRUE(tc.vm_state("prod", "db").at("frozen").as_bool());
  auto missing = run_kubectl(tc.kubeconfig(), {"exec", "-n", "prod", pod, "-c", "compute", "--", "sh", "-c", "nope"});
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->exit_code, 127);
  EXPECT_THAT(missing->err, HasSubstr("nope: not found"));
  auto ls = run_kubectl(tc.kubeconfig(), {"exec", "-n", "prod", "tools", "--", "ls", "/work"});
  ASSERT_TRUE(ls);
  EXPECT_NE(ls->exit_code, 0);
  auto in = run_kubectl(tc.kubeconfig(), {"exec", "-i", "-n", "prod", "tools", "--", "sh", "-c", "wc -c"}, "12345");
  ASSERT_TRUE(in);
  EXPECT_EQ(in->exit_code, 0) << in->err;
  EXPECT_THAT(in->out, HasSubstr("5"));
}

// Not a pass/fail bound on speed: prints what a sandboxed exec costs next to
// the in-process fast path, and checks both ran.
TEST(ExecSandbox, MeasuresTheCostOfASandboxedExec) {
  TestCluster tc(kScenario);
  std::string pod = tc.launcher_pod("prod", "db");
  auto time = [&](const std::vector<std::string>& cmd, int n) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
      auto r = tc.exec("prod", pod, "compute", cmd);
      EXPECT_EQ(r.exit_code, 0) << r.err;
    }
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / n;
  };
  const int n = 20;
  double first = time({"sh", "-c", "true"}, 1);  // the first sandboxed exec of a cluster builds its image directory
  double fast = time({"virt-freezer", "--unfreeze", "--name", "db", "--namespace", "prod"}, n);
  double sandboxed = time({"sh", "-c", "virt-freezer --unfreeze --name db --namespace prod && true"}, n);
  double shell = time({"sh", "-c", "true"}, n);
  std::printf("exec cost (mean of %d): in-process virt-freezer %.1f ms, sandboxed sh -c virt-freezer %.1f ms, sandboxed sh -c true %.1f ms"
              " (the cluster's first sandboxed exec: %.1f ms)\n", n, fast, sandboxed, shell, first);
  EXPECT_GT(fast, 0);
}

}  // namespace
}  // namespace kvb::testing
