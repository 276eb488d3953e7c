// `kvbackup repo ...` end to end: the password from the environment (never
// argv, never printed), put/get bit-identical, dedup on the second put, check.
#include "common/atomic_file.h"
#include "common/subprocess.h"
#include "location/location.h"
#include "tests/support/test_cluster.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kvb::testing {
namespace {
using ::testing::HasSubstr;

ProcessResult repo(const std::vector<std::string>& args, const std::string& password, const std::string& stdin_data = "") {
  ProcessSpec spec;
  spec.stdin_data = stdin_data;
  spec.argv = {kvbackup_binary(), "repo"};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env_overrides = {{"KVBACKUP_REPO_PASSWORD", password}};
  spec.timeout = std::chrono::seconds(60);
  auto r = run_process(spec);
  if (!r) throw std::runtime_error(r.error().message);
  return *r;
}

TEST(RepoCli, InitPutGetCheckAndPasswords) {
  TempDir dir;
  std::string image(3 << 20, '\0');
  for (size_t i = 0; i < image.size() / 2; ++i) image[i] = static_cast<char>((i * 2654435761u) >> 13);
  dir.write("disk.img", image);
  std::string r = (dir / "r").string();
  const std::string pw = "correct-horse-battery";
  ASSERT_EQ(repo({"init", "--repo", r}, pw).exit_code, 0);
  auto put1 = repo({"put", "--repo", r, "vm", (dir / "disk.img").string()}, pw);
  ASSERT_EQ(put1.exit_code, 0) << put1.err;
  auto put2 = repo({"put", "--repo", r, "vm", (dir / "disk.img").string()}, pw);
  EXPECT_THAT(put2.out, HasSubstr(", 0 new (0 B new"));
  auto get = repo({"get", "--repo", r, "vm", (dir / "out.img").string()}, pw);
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(*read_file(dir / "out.img"), image);
  auto check = repo({"check", "--repo", r, "--read-data"}, pw);
  EXPECT_EQ(check.exit_code, 0) << check.err;
  EXPECT_THAT(check.out, HasSubstr("no problems"));

  auto none = repo({"list", "--repo", r}, "");
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_THAT(none.err, HasSubstr("KVBACKUP_REPO_PASSWORD"));
  auto wrong = repo({"list", "--repo", r}, "guess");
  EXPECT_EQ(wrong.exit_code, 2);
  EXPECT_THAT(wrong.err, HasSubstr("wrong password"));
  for (const auto* res : {&put1, &put2, &get, &check, &none, &wrong}) {
    EXPECT_THAT(res->out + res->err, ::testing::Not(HasSubstr(pw)));
    EXPECT_THAT(res->out + res->err, ::testing::Not(HasSubstr("guess")));
  }
}

TEST(RepoCli, StreamsRetentionPruneStatsAndTheLock) {
  TempDir dir;
  std::string r = (dir / "r").string();
  const std::string pw = "pw-for-streams";
  ASSERT_EQ(repo({"init", "--repo", r}, pw).exit_code, 0);
  std::string image;
  for (int i = 0; image.size() < (2u << 20); ++i) image += "line " + std::to_string(i * 7919 % 10007) + " of a guest's log\n";
  auto from_stdin = repo({"put", "--repo", r, "--tag", "nightly", "logs", "-"}, pw, image);
  ASSERT_EQ(from_stdin.exit_code, 0) << from_stdin.err;
  auto changed = image;
  changed.replace(1000, 5, "XXXXX");
  ASSERT_EQ(repo({"put", "--repo", r, "logs", "-"}, pw, changed).exit_code, 0);
  auto to_stdout = repo({"get", "--repo", r, "logs", "-"}, pw);
  ASSERT_EQ(to_stdout.exit_code, 0) << to_stdout.err;
  EXPECT_TRUE(to_stdout.out == changed) << "get - writes the newest snapshot of the name to standard output";
  auto stats = repo({"stats", "--repo", r}, pw);
  EXPECT_THAT(stats.out, HasSubstr("snapshots:        2"));
  auto list = repo({"list", "--repo", r}, pw);
  EXPECT_THAT(list.out, HasSubstr("nightly"));

  auto no_rule = repo({"forget", "--repo", r}, pw);
  EXPECT_EQ(no_rule.exit_code, 2);
  EXPECT_THAT(no_rule.err, HasSubstr("needs a retention rule"));
  EXPECT_EQ(repo({"put", "--repo", r, "--compression-level", "40", "x", "-"}, pw, "x").exit_code, 2);

  // A forget or prune cannot start while another kvbackup holds the repository, and says why.
  {
    auto held = (*location::open_local(r, location::OpenMode::kExisting))->lock(location::LockMode::kShared, {});
    ASSERT_TRUE(held);
    auto busy = repo({"forget", "--repo", r, "--keep-last", "1"}, pw);
    EXPECT_NE(busy.exit_code, 0);
    EXPECT_THAT(busy.err, HasSubstr("is in use"));
  }
  auto forget = repo({"forget", "--repo", r, "--keep-last", "1", "--prune", "--grace-period", "0s"}, pw);
  ASSERT_EQ(forget.exit_code, 0) << forget.err;
  EXPECT_THAT(forget.out, HasSubstr("removed:"));
  EXPECT_THAT(forget.out, HasSubstr("pruned:"));
  auto after = repo({"list", "--repo", r}, pw);
  EXPECT_THAT(after.out, ::testing::Not(HasSubstr("nightly"))) << "the older, tagged snapshot is gone";
  auto check = repo({"check", "--repo", r, "--read-data"}, pw);
  EXPECT_EQ(check.exit_code, 0) << check.err;
  EXPECT_EQ(repo({"get", "--repo", r, "logs", "-"}, pw).out, changed);
}

}  // namespace
}  // namespace kvb::testing
