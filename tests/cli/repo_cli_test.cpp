// `kvbackup repo ...` end to end: the password from the environment (never
// argv, never printed), put/get bit-identical, dedup on the second put, check.
#include "common/atomic_file.h"
#include "common/subprocess.h"
#include "tests/support/test_cluster.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kvb::testing {
namespace {
using ::testing::HasSubstr;

ProcessResult repo(const std::vector<std::string>& args, const std::string& password) {
  ProcessSpec spec;
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

}  // namespace
}  // namespace kvb::testing
