// `kvbackup backup ...` and `kvbackup recover` end to end: the binary against
// the test cluster. Exit codes, bad input, the record on disk, and kill -9 in
// the freeze window followed by recover.
#include "common/subprocess.h"
#include "tests/support/backup_child.h"
#include "tests/support/test_cluster.h"
#include "tests/support/volume_bytes.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace kvb::testing {
namespace {

using ::testing::HasSubstr;

const char* kScenario = R"(
snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: 100ms, readyLatency: 50ms}]
storageClasses: [{name: fast, provisioner: csi.example.com}]
namespaces:
  - name: prod
    vms:
      - {name: db, count: 2, volumes: [{name: root, type: dataVolume, storageClass: fast}]}
      - {name: noagent, agent: none, volumes: [{name: root, type: dataVolume, storageClass: fast}]}
)";


ProcessResult kvbackup(const TestCluster& tc, const std::vector<std::string>& args) { return run_kvbackup(tc, args); }

TEST(BackupCli, CreateDescribeListDelete) {
  TestCluster tc(kScenario);
  std::string loc = (tc.dir() / "loc").string();
  auto c = kvbackup(tc, {"backup", "create", "nightly", "-n", "prod", "--location", loc});
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
  EXPECT_THAT(c.out, HasSubstr("prod/db-0"));
  EXPECT_THAT(c.out, HasSubstr("FileSystemConsistent"));
  EXPECT_THAT(c.out, HasSubstr("CrashConsistent"));  // noagent: as promised, so still exit 0
  EXPECT_THAT(c.err, HasSubstr("prod/db-0: thawed"));
  EXPECT_TRUE(std::filesystem::exists(tc.dir() / "loc/backups/nightly/backup.json"));

  auto d = kvbackup(tc, {"backup", "describe", "nightly", "--location", loc, "--vm", "db-1"});
  EXPECT_EQ(d.exit_code, 0) << d.err;
  EXPECT_THAT(d.out, HasSubstr("VM prod/db-1"));
  EXPECT_THAT(d.out, HasSubstr("virt-freezer"));
  EXPECT_THAT(d.out, ::testing::Not(HasSubstr("VM prod/db-0")));
  auto j = kvbackup(tc, {"backup", "describe", "nightly", "--location", loc, "-o", "json"});
  auto doc = boost::json::parse(j.out).as_object();
  EXPECT_EQ(doc.at("phase").as_string(), "Completed");
  EXPECT_EQ(doc.at("vms").as_array().size(), 3u);

  auto l = kvbackup(tc, {"backup", "list", "--location", loc});
  EXPECT_THAT(l.out, HasSubstr("nightly"));

  auto del = kvbackup(tc, {"backup", "delete", "nightly", "--location", loc});
  EXPECT_EQ(del.exit_code, 0) << del.err;
  EXPECT_THAT(del.err, HasSubstr("deleted 3 VolumeSnapshots"));
  EXPECT_FALSE(std::filesystem::exists(tc.dir() / "loc/backups/nightly"));
  auto snaps = run_kubectl(tc.kubeconfig(), {"get", "volumesnapshots", "-n", "prod", "-o", "name"});
  if (snaps) {
    EXPECT_EQ(snaps->out, "");
  }
  auto gone = kvbackup(tc, {"backup", "describe", "nightly", "--location", loc});
  EXPECT_NE(gone.exit_code, 0);
  EXPECT_THAT(gone.err, HasSubstr("backup \"nightly\" not found"));
}

TEST(BackupCli, ExitsNonZeroWhenAVmDidNotEndAsPromised) {
  TestCluster tc(kScenario);
  std::string loc = (tc.dir() / "loc").string();
  auto fail = kvbackup(tc, {"backup", "create", "strict", "-n", "prod", "--location", loc, "--on-no-agent", "fail", "-o", "json"});
  EXPECT_EQ(fail.exit_code, 1) << fail.out << fail.err;
  auto doc = boost::json::parse(fail.out).as_object();
  EXPECT_EQ(doc.at("phase").as_string(), "PartiallyFailed");
  tc.add_fault(R"({"type":"snapshot-fail","vm":"db-0","message":"no space"})");
  auto broken = kvbackup(tc, {"backup", "create", "broken", "-n", "prod", "--location", loc, "--vm", "db-0"});
  EXPECT_EQ(broken.exit_code, 1);
  EXPECT_THAT(broken.out, HasSubstr("no space"));
}

TEST(BackupCli, BadInputIsAClearErrorWithANonZeroExit) {
  TestCluster tc(kScenario);
  std::string loc = (tc.dir() / "loc").string();
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string message;
  };
  tc.dir().write("a-file", "x");
  std::vector<Case> cases = {
      {{"--vm", "ghost"}, 1, "VirtualMachine \"ghost\" not found"},
      {{"--snapshot-class", "nope"}, 2, "--snapshot-class: VolumeSnapshotClass \"nope\" not found"},
      {{"--snapshot-class-map", "fast"}, 2, "--snapshot-class-map \"fast\": expected STORAGECLASS=VOLUMESNAPSHOTCLASS"},
      {{"--freeze-deadline", "soon"}, 2, "--freeze-deadline \"soon\""},
      {{"--concurrency", "0"}, 2, "--concurrency 0"},
      {{"--pre-rule", (tc.dir() / "missing.yaml").string(), "--post-rule", "x"}, 2, "missing.yaml"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"backup", "create", "bad", "-n", "prod", "--location", loc};
    args.insert(args.end(), c.args.begin(), c.args.end());
    auto r = kvbackup(tc, args);
    EXPECT_EQ(r.exit_code, c.code) << c.message << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.message));
    EXPECT_FALSE(std::filesystem::exists(tc.dir() / "loc/backups/bad/backup.json")) << c.message;
  }
  auto unwritable = kvbackup(tc, {"backup", "create", "bad", "-n", "prod", "--location", (tc.dir() / "a-file/loc").string()});
  EXPECT_NE(unwritable.exit_code, 0);
  EXPECT_THAT(unwritable.err, HasSubstr("a-file/loc"));
  auto badname = kvbackup(tc, {"backup", "create", "Bad/Name", "-n", "prod", "--location", loc});
  EXPECT_EQ(badname.exit_code, 2);
  EXPECT_THAT(badname.err, HasSubstr("backup name \"Bad/Name\""));
  EXPECT_TRUE(tc.events("Freeze").empty()) << "no guest was touched";
}

// A backup `name` killed with SIGKILL once both guests are frozen.
struct Killed {
  bool frozen = false;  // both guests were frozen before the kill
  int wstatus = 0;
  std::string err;      // what the backup had said
};
Killed kill_nine_while_frozen(TestCluster& tc, const std::string& loc, const std::string& name) {
  Killed k;
  auto child = start_stuck_backup(tc, loc, name);
  k.frozen = wait_for_lines(child.stderr_fd, ": frozen", 2, k.err);
  ::kill(child.pid, SIGKILL);
  k.wstatus = reap(child);
  return k;
}

TEST(BackupCli, KillNineWhileFrozenThenRecoverThawsEveryVm) {
  TestCluster tc(kScenario);
  std::string loc = (tc.dir() / "loc").string();
  auto killed = kill_nine_while_frozen(tc, loc, "doomed");
  ASSERT_TRUE(killed.frozen) << killed.err;
  ASSERT_TRUE(WIFSIGNALED(killed.wstatus));
  EXPECT_TRUE(tc.vm_state("prod", "db-0").at("frozen").as_bool()) << "the kill left the guest frozen";
  EXPECT_TRUE(tc.vm_state("prod", "db-1").at("frozen").as_bool());

  auto r = kvbackup(tc, {"recover", "--location", loc});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("thawed prod/db-0 (left by backup doomed)"));
  EXPECT_FALSE(tc.vm_state("prod", "db-0").at("frozen").as_bool());
  EXPECT_FALSE(tc.vm_state("prod", "db-1").at("frozen").as_bool());
  auto rec = boost::json::parse(kvbackup(tc, {"backup", "describe", "doomed", "--location", loc, "-o", "json"}).out).as_object();
  EXPECT_EQ(rec.at("phase").as_string(), "Failed") << "a dead backup's record is not presented as complete";
  EXPECT_THAT(std::string(rec.at("error").as_string()), HasSubstr("process died"));
  auto again = kvbackup(tc, {"recover", "--location", loc});
  EXPECT_THAT(again.out, HasSubstr("0 stale journal entries"));
}

// `backup delete` of a backup whose run died with guests frozen: the journal
// entry is what finds those guests, so delete thaws them first (as recover),
// and refuses — keeping backup and entry — when it cannot.
TEST(BackupCli, DeletingABackupWhoseRunDiedFrozenThawsItsGuestsFirst) {
  TestCluster tc(kScenario);
  std::string loc = (tc.dir() / "loc").string();
  auto killed = kill_nine_while_frozen(tc, loc, "doomed");
  ASSERT_TRUE(killed.frozen) << killed.err;
  ASSERT_TRUE(tc.vm_state("prod", "db-0").at("frozen").as_bool()) << "the kill left the guest frozen";

  // The cluster cannot be reached: nothing can be thawed, so nothing is deleted.
  std::string config = read_whole(tc.kubeconfig());
  const auto at = config.find("server: ");
  ASSERT_NE(at, std::string::npos);
  config.replace(at, config.find('\n', at) - at, "server: https://127.0.0.1:1");
  tc.dir().write("unreachable.kubeconfig", config);
  ProcessSpec spec;
  spec.argv = {kvbackup_binary(), "--kubeconfig", (tc.dir() / "unreachable.kubeconfig").string(), "backup", "delete", "doomed",
               "--location", loc};
  auto refused = run_process(spec);
  ASSERT_TRUE(refused);
  EXPECT_NE(refused->exit_code, 0);
  EXPECT_THAT(refused->err, HasSubstr("a run of backup doomed died"));
  EXPECT_TRUE(std::filesystem::exists(tc.dir() / "loc/backups/doomed/backup.json")) << "the backup was kept";
  EXPECT_TRUE(std::filesystem::exists(tc.dir() / "loc/journal/doomed.json")) << "the entry that finds the frozen guests was kept";

  auto del = kvbackup(tc, {"backup", "delete", "doomed", "--location", loc});
  EXPECT_EQ(del.exit_code, 0) << del.out << del.err;
  EXPECT_THAT(del.err, HasSubstr("thawed prod/db-0 (left by backup doomed)"));
  EXPECT_FALSE(tc.vm_state("prod", "db-0").at("frozen").as_bool());
  EXPECT_FALSE(tc.vm_state("prod", "db-1").at("frozen").as_bool());
  EXPECT_FALSE(std::filesystem::exists(tc.dir() / "loc/backups/doomed"));
  EXPECT_FALSE(std::filesystem::exists(tc.dir() / "loc/journal/doomed.json"));
}

TEST(BackupCli, SigtermWhileFrozenThawsBeforeExiting) {
  TestCluster tc(kScenario);
  std::string loc = (tc.dir() / "loc").string();
  auto child = start_stuck_backup(tc, loc, "stopped");
  std::string err;
  bool frozen = wait_for_lines(child.stderr_fd, ": frozen", 2, err);
  ::kill(child.pid, SIGTERM);
  bool thawed = wait_for_lines(child.stderr_fd, ": thawed", 2, err);
  int wstatus = reap(child);
  ASSERT_TRUE(frozen && thawed) << err;
  ASSERT_TRUE(WIFEXITED(wstatus));
  EXPECT_EQ(WEXITSTATUS(wstatus), 128 + SIGTERM);
  EXPECT_FALSE(tc.vm_state("prod", "db-0").at("frozen").as_bool());
  EXPECT_FALSE(tc.vm_state("prod", "db-1").at("frozen").as_bool());
}

}  // namespace
}  // namespace kvb::testing
