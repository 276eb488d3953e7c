// Issue 13 items 11 and 16, the location's parts.
//
// - Everything a location or a repository writes is private whatever the
//   umask: files 0600, directories 0700 (records hold cloud-init user data,
//   the journal names pods, a repository's keys wrap its master key).
// - Commands that only read a location (backup list/describe/delete,
//   recover, restore create/list/describe) do not create a missing one: a
//   typo is an error naming it, not an empty list with exit 0.
#include "common/subprocess.h"
#include "location/location.h"
#include "tests/support/test_cluster.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>

namespace kvb::testing {
namespace {
using ::testing::HasSubstr;
namespace fs = std::filesystem;

// Sets the process umask for a scope (children inherit it).
struct Umask {
  explicit Umask(mode_t m) : old(::umask(m)) {}
  ~Umask() { ::umask(old); }
  mode_t old;
};

// Every file and directory under root (root included) with a mode other than 0600/0700.
std::vector<std::string> not_private(const fs::path& root) {
  std::vector<std::string> out;
  auto check = [&](const fs::path& p) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) return;
    unsigned want = S_ISDIR(st.st_mode) ? 0700 : 0600;
    if ((st.st_mode & 07777) != want) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "%04o", st.st_mode & 07777);
      out.push_back(p.string() + " is " + buf);
    }
  };
  check(root);
  for (const auto& e : fs::recursive_directory_iterator(root)) check(e.path());
  return out;
}

const char* kScenario = R"(
snapshotClasses: [{name: csi-snap, driver: csi.example.com}]
storageClasses: [{name: fast, provisioner: csi.example.com}]
namespaces:
  - name: prod
    vms:
      - name: db
        volumes: [{name: root, type: dataVolume, storageClass: fast}, {name: cloudinit, type: cloudInitNoCloud}]
)";

TEST(LocationPermissions, EveryFileIs0600AndEveryDirectory0700WhateverTheUmask) {
  Umask lax(0);
  TempDir dir;
  auto loc = location::open_local(dir / "loc");
  ASSERT_TRUE(loc) << loc.error().message;
  ASSERT_TRUE((*loc)->put("backups/b/resources/prod/vms/db.json", "{}"));
  ASSERT_TRUE((*loc)->put_deferred("backups/b/backup.json", "{}"));
  ASSERT_TRUE((*loc)->put("journal/b.json", "{}", /*secret=*/false));
  auto bad = not_private(dir / "loc");
  EXPECT_TRUE(bad.empty()) << bad.front();
}

TEST(LocationPermissions, ABackupAndARepositoryUnderUmaskZeroArePrivate) {
  Umask lax(0);
  TestCluster tc(kScenario);
  std::string loc = (tc.dir() / "loc").string();
  auto c = run_kvbackup(tc, {"backup", "create", "nightly", "-n", "prod", "--location", loc});
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
  auto bad = not_private(loc);
  EXPECT_TRUE(bad.empty()) << bad.size() << " not private, e.g. " << bad.front();

  std::string r = (tc.dir() / "repo").string();
  tc.dir().write("img", std::string(1 << 20, 'x') + std::string(1 << 20, 'y'));
  ProcessSpec spec;
  spec.env_overrides = {{"KVBACKUP_REPO_PASSWORD", "pw"}};
  for (auto args : {std::vector<std::string>{"init", "--repo", r}, std::vector<std::string>{"put", "--repo", r, "vm", (tc.dir() / "img").string()}}) {
    spec.argv = {kvbackup_binary(), "repo"};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    auto res = run_process(spec);
    ASSERT_TRUE(res);
    ASSERT_EQ(res->exit_code, 0) << res->err;
  }
  auto bad_repo = not_private(r);
  EXPECT_TRUE(bad_repo.empty()) << bad_repo.size() << " not private, e.g. " << bad_repo.front();
}

TEST(LocationOpen, ReadOnlyCommandsDoNotCreateAMissingLocation) {
  TestCluster tc(kScenario);
  std::string typo = (tc.dir() / "kvbackup-bakcups").string();
  for (auto args : {std::vector<std::string>{"backup", "list"}, std::vector<std::string>{"backup", "describe", "nightly"},
                    std::vector<std::string>{"backup", "delete", "nightly"}, std::vector<std::string>{"recover"},
                    std::vector<std::string>{"restore", "list"}, std::vector<std::string>{"restore", "describe", "r1"},
                    std::vector<std::string>{"restore", "create", "r1", "--from-backup", "nightly"}}) {
    args.push_back("--location");
    args.push_back(typo);
    auto r = run_kvbackup(tc, args);
    EXPECT_NE(r.exit_code, 0) << args[0] << " " << args[1] << ": " << r.out;
    EXPECT_THAT(r.err, HasSubstr(typo)) << args[0] << " " << args[1];
    EXPECT_THAT(r.err, HasSubstr("does not exist")) << args[0] << " " << args[1];
    EXPECT_FALSE(fs::exists(typo)) << args[0] << " " << args[1] << " created the location";
  }
  auto l = location::open_local(typo, location::OpenMode::kExisting);
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().code, Errc::kNotFound);
  // backup create still creates it.
  auto c = run_kvbackup(tc, {"backup", "create", "nightly", "-n", "prod", "--location", typo});
  EXPECT_EQ(c.exit_code, 0) << c.err;
  auto list = run_kvbackup(tc, {"backup", "list", "--location", typo});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_THAT(list.out, HasSubstr("nightly"));
}

}  // namespace
}  // namespace kvb::testing
