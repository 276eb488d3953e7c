// Issue 13 items 15 and 16: hostile input files are clear errors, never a
// crash, a hang or an exhausted machine.
//
// - A 1 KB YAML alias bomb (a rule file) stops at the expansion limit at once.
// - /dev/zero, an endless FIFO and oversized files given as a rule file, a
//   kubeconfig, a scenario or a password file stop at the size limit.
// - A key given twice in one mapping (YAML or JSON) and a NUL byte in a name
//   are errors naming the file, the key and the line.
// - From the command line: exit 2 and a message naming the file.
#include "common/bounded_read.h"
#include "common/yaml_json.h"
#include "kube/config.h"
#include "rules/parse.h"
#include "testcluster/scenario.h"
#include "tests/support/test_cluster.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace kvb::testing {
namespace {
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

// Nine levels of ten aliases each: 10^9 values once expanded, from ~1 KB.
std::string alias_bomb() {
  std::string y = "a0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n";
  for (int i = 1; i <= 9; ++i) {
    std::string prev = "*a" + std::to_string(i - 1);
    y += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) y += (j ? ", " : "") + prev;
    y += "]\n";
  }
  return y;
}

TEST(BoundedInput, YamlAliasBombStopsAtTheExpansionLimit) {
  std::string bomb = alias_bomb();
  ASSERT_LT(bomb.size(), 1200u);
  auto start = Clock::now();
  auto v = parse_yaml(bomb, "bomb.yaml");
  ASSERT_FALSE(v);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(20));
  EXPECT_EQ(v.error().code, Errc::kParse);
  EXPECT_THAT(v.error().message, HasSubstr("bomb.yaml"));
  EXPECT_THAT(v.error().message, HasSubstr("expands to more than"));

  // A large value repeated by aliases: few values, much text.
  std::string wide = "v: &v \"" + std::string(1 << 20, 'x') + "\"\nl: [" ;
  for (int i = 0; i < 100; ++i) wide += (i ? ", " : "") + std::string("*v");
  wide += "]\n";
  auto w = parse_yaml(wide, "wide.yaml");
  ASSERT_FALSE(w);
  EXPECT_THAT(w.error().message, HasSubstr("MiB of text"));

  TempDir dir;
  dir.write("bomb.yaml", bomb);
  auto rules = rules::load_rule_file(dir / "bomb.yaml", rules::Phase::kPre);
  ASSERT_FALSE(rules);
  EXPECT_THAT(rules.error().message, HasSubstr((dir / "bomb.yaml").string()));
}

TEST(BoundedInput, EndlessAndOversizedFilesStopAtTheLimit) {
  auto zero = read_file_bounded("/dev/zero", "rule file");
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.error().code, Errc::kInvalidArgument);
  EXPECT_THAT(zero.error().message, HasSubstr("rule file /dev/zero is larger than 4 MiB"));

  auto rules = rules::load_rule_file("/dev/zero", rules::Phase::kPre);
  ASSERT_FALSE(rules);
  EXPECT_THAT(rules.error().message, HasSubstr("/dev/zero"));

  kube::LoadOptions lo;
  lo.kubeconfig = "/dev/zero";
  auto kc = kube::load_config(lo);
  ASSERT_FALSE(kc);
  EXPECT_THAT(kc.error().message, HasSubstr("kubeconfig /dev/zero is larger than"));

  auto scenario = testcluster::load_scenario("/dev/zero");
  ASSERT_FALSE(scenario);
  EXPECT_THAT(scenario.error().message, HasSubstr("/dev/zero"));

  // A FIFO whose writer never stops: the reader stops at the limit.
  TempDir dir;
  auto fifo = dir / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::signal(SIGPIPE, SIG_IGN);
  std::thread writer([&] {
    int fd = ::open(fifo.c_str(), O_WRONLY);
    if (fd < 0) return;
    std::string block(1 << 16, 'y');
    while (::write(fd, block.data(), block.size()) > 0) {
    }
    ::close(fd);
  });
  auto endless = read_file_bounded(fifo, "kubeconfig");
  writer.join();
  ASSERT_FALSE(endless);
  EXPECT_THAT(endless.error().message, HasSubstr("is larger than 4 MiB"));

  // Under the limit, any kind of file reads whole; a directory is an error, not a crash.
  dir.write("small", "abc");
  EXPECT_EQ(*read_file_bounded(dir / "small", "rule file"), "abc");
  EXPECT_FALSE(read_file_bounded(dir.path(), "rule file"));
  auto missing = read_file_bounded(dir / "missing", "rule file");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::kNotFound);
}

TEST(BoundedInput, DuplicateKeysAndNulBytesAreErrorsNamingFileKeyAndLine) {
  auto dup = parse_yaml("apiVersion: stork.libopenstorage.org/v1alpha1\nkind: Rule\nmetadata:\n  name: a\n  name: b\n", "rules.yaml");
  ASSERT_FALSE(dup);
  EXPECT_THAT(dup.error().message, HasSubstr("rules.yaml: line 5"));
  EXPECT_THAT(dup.error().message, HasSubstr("key \"name\" appears twice"));

  auto dup_json = parse_yaml(R"({"kind": "Rule", "kind": "Other"})", "rule.json");
  ASSERT_FALSE(dup_json);
  EXPECT_THAT(dup_json.error().message, HasSubstr("key \"kind\" appears twice"));

  auto nul = parse_yaml("metadata:\n  name: \"db\\0rm -rf\"\n", "rules.yaml");
  ASSERT_FALSE(nul);
  EXPECT_THAT(nul.error().message, HasSubstr("rules.yaml: line 2"));
  EXPECT_THAT(nul.error().message, HasSubstr("NUL"));
  auto nul_key = parse_yaml("\"a\\0b\": 1\n", "x.yaml");
  ASSERT_FALSE(nul_key);

  std::string deep(300, '[');
  deep += std::string(300, ']');
  auto d = parse_yaml(deep, "deep.yaml");
  EXPECT_FALSE(d);

  TempDir dir;
  dir.write("kubeconfig", "apiVersion: v1\nkind: Config\ncurrent-context: a\ncurrent-context: b\nclusters: []\n");
  kube::LoadOptions lo;
  lo.kubeconfig = (dir / "kubeconfig").string();
  auto kc = kube::load_config(lo);
  ASSERT_FALSE(kc);
  EXPECT_THAT(kc.error().message, HasSubstr((dir / "kubeconfig").string()));
  EXPECT_THAT(kc.error().message, HasSubstr("\"current-context\" appears twice"));

  auto sc = testcluster::parse_scenario("namespaces: []\nnamespaces: []\n", "scenario.yaml");
  ASSERT_FALSE(sc);
  EXPECT_THAT(sc.error().message, HasSubstr("\"namespaces\" appears twice"));
}

TEST(BoundedInput, TheCommandLineExitsTwoNamingTheFile) {
  TestCluster tc(R"(
snapshotClasses: [{name: csi-snap, driver: csi.example.com}]
storageClasses: [{name: fast, provisioner: csi.example.com}]
namespaces:
  - name: prod
    vms: [{name: db, volumes: [{name: root, type: dataVolume, storageClass: fast}]}]
)");
  auto zero = run_kvbackup(tc, {"rules", "check", "-n", "prod", "--pre-rule", "/dev/zero", "--post-rule", "/dev/zero"});
  EXPECT_EQ(zero.exit_code, 2) << zero.out << zero.err;
  EXPECT_THAT(zero.err, HasSubstr("/dev/zero"));
  EXPECT_THAT(zero.err, HasSubstr("larger than"));

  tc.dir().write("bomb.yaml", alias_bomb());
  auto bomb = run_kvbackup(tc, {"rules", "check", "-n", "prod", "--pre-rule", (tc.dir() / "bomb.yaml").string(), "--post-rule",
                                (tc.dir() / "bomb.yaml").string()});
  EXPECT_EQ(bomb.exit_code, 2) << bomb.out << bomb.err;
  EXPECT_THAT(bomb.err, HasSubstr("bomb.yaml"));

  ProcessSpec spec;
  spec.argv = {kvbackup_binary(), "--kubeconfig", "/dev/zero", "rules", "check", "-n", "prod"};
  auto kc = run_process(spec);
  ASSERT_TRUE(kc);
  EXPECT_EQ(kc->exit_code, 2) << kc->err;
  EXPECT_THAT(kc->err, HasSubstr("kubeconfig /dev/zero is larger than"));

  tc.dir().write("pw", std::string(5 << 20, 'p'));
  spec.argv = {kvbackup_binary(), "repo", "list", "--repo", (tc.dir() / "r").string(), "--password-file", (tc.dir() / "pw").string()};
  auto pw = run_process(spec);
  ASSERT_TRUE(pw);
  EXPECT_EQ(pw->exit_code, 2) << pw->err;
  EXPECT_THAT(pw->err, HasSubstr("password file"));
}

}  // namespace
}  // namespace kvb::testing
