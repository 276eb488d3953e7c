// The repository and backup locations on S3, end to end, against radosgw:
// kvbackup repo init/put/get/check --read-data/forget/prune with --repo
// s3://..., the same through a fault-injecting proxy (500, 503 SlowDown,
// connection resets before and after the server acted, latency, truncated
// bodies) and across a radosgw restart mid-upload: every cell ends with
// nothing lost and check --read-data clean. Secrets never appear in output.
#include "common/atomic_file.h"
#include "common/subprocess.h"
#include "tests/support/s3_servers.h"
#include "tests/support/test_cluster.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>

namespace kvb::testing {
namespace {
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kPassword = "s3-repo-password-7f3a";

ProcessResult kvb(const S3Server& s, const std::vector<std::string>& args, EnvVars extra = {}) {
  ProcessSpec spec;
  spec.argv = {kvbackup_binary()};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env_overrides = s3_env(s);
  spec.env_overrides.emplace_back("KVBACKUP_REPO_PASSWORD", kPassword);
  for (auto& e : extra) spec.env_overrides.push_back(e);
  spec.timeout = std::chrono::seconds(300);
  spec.output_cap = 64 << 20;
  auto r = run_process(spec);
  if (!r) throw std::runtime_error(r.error().message);
  return *r;
}

std::string image(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  // Half random, half text-like (compressible), with zero runs: what a disk holds.
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    if ((i >> 16) % 4 == 1) v = 0x6f6c6c6568206f6cULL;
    if ((i >> 16) % 4 == 3) v = 0;
    std::memcpy(&s[i], &v, std::min<size_t>(8, n - i));
  }
  return s;
}

void expect_no_secret(const S3Server& s, const ProcessResult& r) {
  EXPECT_THAT(r.out + r.err, Not(HasSubstr(s.secret_key)));
  EXPECT_THAT(r.out + r.err, Not(HasSubstr(kPassword)));
}

TEST(S3Repo, InitPutGetCheckForgetPruneOnRadosgw) {
  const auto& s = radosgw();
  ASSERT_TRUE(s.ok);
  TempDir dir;
  std::string repo = s3_url(s, "repos/cli");
  std::string img1 = image(40 << 20, 1), img2 = img1;
  for (size_t i = 0; i < img2.size(); i += (1 << 20)) img2[i] ^= 0x55;  // scattered changes
  dir.write("v1.img", img1);
  dir.write("v2.img", img2);
  std::vector<ProcessResult> all;
  auto run = [&](std::vector<std::string> args) {
    auto r = kvb(s, args);
    all.push_back(r);
    return r;
  };
  auto init = run({"repo", "init", "--repo", repo});
  ASSERT_EQ(init.exit_code, 0) << init.err;
  EXPECT_THAT(init.out, HasSubstr("created repository s3://kvbtest/repos/cli"));
  auto again = run({"repo", "init", "--repo", repo});
  EXPECT_NE(again.exit_code, 0);
  auto p1 = run({"repo", "put", "--repo", repo, "vm-db", (dir / "v1.img").string()});
  ASSERT_EQ(p1.exit_code, 0) << p1.err;
  auto p2 = run({"repo", "put", "--repo", repo, "vm-db", (dir / "v2.img").string()});
  ASSERT_EQ(p2.exit_code, 0) << p2.err;
  auto get = run({"repo", "get", "--repo", repo, "vm-db", (dir / "out.img").string()});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_TRUE(*read_file(dir / "out.img") == img2);
  auto list = run({"repo", "list", "--repo", repo});
  EXPECT_THAT(list.out, HasSubstr("vm-db"));
  auto check = run({"repo", "check", "--repo", repo, "--read-data"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_THAT(check.out, HasSubstr("no problems"));
  auto forget = run({"repo", "forget", "--repo", repo, "--keep-last", "1", "--prune", "--grace-period", "0s"});
  ASSERT_EQ(forget.exit_code, 0) << forget.err;
  EXPECT_THAT(forget.out, HasSubstr("pruned:"));
  auto after = run({"repo", "check", "--repo", repo, "--read-data"});
  EXPECT_EQ(after.exit_code, 0) << after.out << after.err;
  auto get2 = run({"repo", "get", "--repo", repo, "--overwrite", "vm-db", (dir / "out.img").string()});
  ASSERT_EQ(get2.exit_code, 0) << get2.err;
  EXPECT_TRUE(*read_file(dir / "out.img") == img2);
  auto stats = run({"repo", "stats", "--repo", repo});
  EXPECT_THAT(stats.out, HasSubstr("snapshots:        1"));

  // awscli sees the repository's layout.
  auto ls = run_aws(s, {"s3", "ls", "--recursive", "s3://kvbtest/repos/cli/"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  for (const char* part : {"repos/cli/config", "repos/cli/keys/", "repos/cli/data/", "repos/cli/index/", "repos/cli/snapshots/"}) {
    EXPECT_THAT(ls.out, HasSubstr(part));
  }
  EXPECT_THAT(ls.out, Not(HasSubstr("repos/cli/locks/"))) << "every lock was released";
  for (const auto& r : all) expect_no_secret(s, r);

  // Mistakes: a repository that is not there, a scheme kvbackup does not serve, a wrong key.
  auto none = kvb(s, {"repo", "list", "--repo", s3_url(s, "repos/typo")});
  EXPECT_NE(none.exit_code, 0);
  EXPECT_THAT(none.err, HasSubstr("s3://kvbtest/repos/typo"));
  for (const char* bad : {"gs://kvbtest/repo", "azure://kvbtest/repo", "s3:/kvbtest/repo"}) {
    auto r = kvb(s, {"repo", "init", "--repo", bad});
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_THAT(r.err, HasSubstr(bad));
  }
  auto wrong = kvb(s, {"repo", "list", "--repo", repo}, {{"AWS_SECRET_ACCESS_KEY", "wrong-secret-for-the-test"}});
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_THAT(wrong.err, HasSubstr("SignatureDoesNotMatch"));
  EXPECT_THAT(wrong.err, HasSubstr("s3://kvbtest/repos/cli"));
  EXPECT_THAT(wrong.err, Not(HasSubstr("wrong-secret-for-the-test")));
  auto session = kvb(s, {"repo", "list", "--repo", repo}, {{"AWS_SESSION_TOKEN", "IQoJb3JpZ2luX2VjE-session-secret"}});
  EXPECT_THAT(session.out + session.err, Not(HasSubstr("IQoJb3JpZ2luX2VjE")));
}

struct FaultCell {
  const char* name;
  const char* rules;
};

TEST(S3Repo, EveryFaultCellEndsWithNothingLostAndACleanCheck) {
  const auto& proxy = fault_proxy();
  ASSERT_TRUE(proxy.ok);
  TempDir dir;
  const std::vector<FaultCell> cells = {
      {"500 on pack uploads", R"([{"method": "PUT", "contains": "/data/", "fault": "500", "count": 3}])"},
      {"503 SlowDown on reads", R"([{"method": "GET", "contains": "/data/", "fault": "503", "count": 3}])"},
      {"reset before the server acts", R"([{"method": "PUT", "contains": "/data/", "fault": "reset", "count": 2}])"},
      {"reset after the server acted", R"([{"method": "PUT", "contains": "/data/", "fault": "reset_after", "count": 2}])"},
      {"reset on the index and snapshot", R"([{"method": "PUT", "contains": "/index/", "fault": "reset_after", "count": 1},
                                              {"method": "PUT", "contains": "/snapshots/", "fault": "500", "count": 1}])"},
      {"latency", R"([{"fault": "latency", "ms": 300, "count": 10}])"},
      {"truncated bodies", R"([{"method": "GET", "contains": "/data/", "fault": "truncate", "count": 2},
                               {"method": "GET", "contains": "list-type", "fault": "truncate", "count": 1}])"},
  };
  std::string img = image(24 << 20, 7);
  dir.write("img", img);
  int cell_no = 0;
  for (const auto& cell : cells) {
    SCOPED_TRACE(cell.name);
    std::string repo = s3_url(proxy, "repos/fault-" + std::to_string(cell_no++));
    set_proxy_faults("[]");
    ASSERT_EQ(kvb(proxy, {"repo", "init", "--repo", repo}).exit_code, 0);
    set_proxy_faults(cell.rules);
    auto put = kvb(proxy, {"repo", "put", "--repo", repo, "vm", (dir / "img").string()});
    auto get = kvb(proxy, {"repo", "get", "--repo", repo, "vm", (dir / "out").string(), "--overwrite"});
    set_proxy_faults("[]");
    EXPECT_EQ(put.exit_code, 0) << put.err;
    EXPECT_EQ(get.exit_code, 0) << get.err;
    if (get.exit_code == 0) {
      EXPECT_TRUE(*read_file(dir / "out") == img) << "restored bit-identically";
    }
    auto check = kvb(proxy, {"repo", "check", "--repo", repo, "--read-data"});
    EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
    EXPECT_THAT(check.out, HasSubstr("no problems"));
  }
  EXPECT_THAT(proxy_stats(), ::testing::ContainsRegex("\"injected\": [1-9][0-9]*"));
}

TEST(S3Repo, RadosgwRestartingMidUploadLosesNothing) {
  const auto& s = radosgw();
  ASSERT_TRUE(s.ok);
  TempDir dir;
  std::string repo = s3_url(s, "repos/restart");
  ASSERT_EQ(kvb(s, {"repo", "init", "--repo", repo}).exit_code, 0);
  std::string img = image(96 << 20, 9);
  dir.write("img", img);
  EnvVars env = s3_env(s);
  env.emplace_back("KVBACKUP_REPO_PASSWORD", kPassword);
  auto child = spawn_process({kvbackup_binary(), "repo", "put", "--repo", repo, "vm", (dir / "img").string()}, environment_with(env), dir.path());
  ASSERT_TRUE(child);
  ::close(child->stdin_fd);
  // Restart radosgw once the put has stored a few packs.
  auto data = s3_url(s, "repos/restart/data/");
  bool started = false;
  for (int i = 0; i < 600 && !started; ++i) {
    auto ls = run_aws(s, {"s3", "ls", "--recursive", data});
    started = std::count(ls.out.begin(), ls.out.end(), '\n') >= 2;
  }
  EXPECT_TRUE(started) << "the put stored packs";
  ASSERT_TRUE(restart_radosgw());
  std::string out, err;
  char buf[4096];
  for (ssize_t n; (n = ::read(child->stdout_fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  for (ssize_t n; (n = ::read(child->stderr_fd, buf, sizeof buf)) > 0;) err.append(buf, static_cast<size_t>(n));
  int status = 0;
  ASSERT_EQ(::waitpid(child->pid, &status, 0), child->pid);
  ::close(child->stdout_fd);
  ::close(child->stderr_fd);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "retries carry the put across the restart: " << err;
  auto check = kvb(s, {"repo", "check", "--repo", repo, "--read-data"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  if (WEXITSTATUS(status) == 0) {
    auto get = kvb(s, {"repo", "get", "--repo", repo, "vm", (dir / "out").string()});
    ASSERT_EQ(get.exit_code, 0) << get.err;
    EXPECT_TRUE(*read_file(dir / "out") == img);
  }
}

TEST(S3Location, BackupRecordsAreReadFromS3) {
  const auto& s = radosgw();
  ASSERT_TRUE(s.ok);
  TestCluster tc(R"(
snapshotClasses: [{name: csi-snap, driver: csi.example.com}]
storageClasses: [{name: fast, provisioner: csi.example.com}]
namespaces:
  - name: prod
    vms: [{name: db, volumes: [{name: root, type: dataVolume, storageClass: fast}]}]
)");
  std::string loc = s3_url(s, "locations/prod");
  auto with_env = [&](std::vector<std::string> args, EnvVars extra = {}) {
    ProcessSpec spec;
    spec.argv = {kvbackup_binary(), "--kubeconfig", tc.kubeconfig().string()};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.env_overrides = s3_env(s);
    for (auto& e : extra) spec.env_overrides.push_back(e);
    spec.timeout = std::chrono::seconds(120);
    auto r = run_process(spec);
    if (!r) throw std::runtime_error(r.error().message);
    return *r;
  };
  auto missing = with_env({"backup", "list", "--location", loc});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.err, HasSubstr("s3://kvbtest/locations/prod does not exist"));

  // A wrong secret is reported before any VM is touched, naming the location, not the secret.
  auto wrong = with_env({"backup", "create", "n2", "-n", "prod", "--location", loc}, {{"AWS_SECRET_ACCESS_KEY", "nope-nope-nope"}});
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_THAT(wrong.err, HasSubstr("SignatureDoesNotMatch"));
  EXPECT_THAT(wrong.err, HasSubstr("s3://kvbtest/locations/prod"));
  EXPECT_THAT(wrong.out + wrong.err, Not(HasSubstr("nope-nope-nope")));
  EXPECT_TRUE(tc.events("Freeze").empty()) << "no guest was touched";

  // Records written to a directory and copied to the bucket are read from S3
  // (backups made in S3 directly: s3_backup_test.cpp).
  std::string local = (tc.dir() / "local").string();
  auto made = with_env({"backup", "create", "weekly", "-n", "prod", "--location", local});
  ASSERT_EQ(made.exit_code, 0) << made.out << made.err;
  auto copy = run_aws(s, {"s3", "cp", "--recursive", "--quiet", local + "/backups", loc + "/backups"});
  ASSERT_EQ(copy.exit_code, 0) << copy.err;
  auto list = with_env({"backup", "list"}, {{"KVBACKUP_LOCATION", loc}});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_THAT(list.out, HasSubstr("weekly"));
  auto describe = with_env({"backup", "describe", "weekly", "--location", loc});
  EXPECT_EQ(describe.exit_code, 0) << describe.err;
  EXPECT_THAT(describe.out, HasSubstr("prod/db"));
  for (const auto* r : {&list, &describe, &missing}) EXPECT_THAT(r->out + r->err, Not(HasSubstr(s.secret_key)));
}

}  // namespace
}  // namespace kvb::testing
