// A local location's run locks and create-if-absent (Location::lock_path and
// Location::create; docs/location.md, "Journals and run locks"): one holder
// at a time, a released lock leaves no file, a holder whose lock file was
// removed knows it lost the lock (and never removes its successor's), and
// create never replaces a file.
#include "location/location.h"
#include "tests/support/test_api_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>

namespace kvb::location {
namespace {
using testing::TempDir;

TEST(LocalRunLock, OneHolderAtATimeAndNothingLeftBehind) {
  TempDir dir;
  auto loc = open_local(dir / "loc");
  ASSERT_TRUE(loc) << loc.error().message;
  auto a = (*loc)->lock_path("journal/nightly.lock", {});
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_TRUE((*a)->still_held());
  auto b = (*loc)->lock_path("journal/nightly.lock", kRunLockContention);
  ASSERT_FALSE(b) << "two holders of one run lock";
  EXPECT_EQ(b.error().code, Errc::kConflict);
  EXPECT_TRUE((*loc)->lock_path("journal/weekly.lock", {})) << "another name is another lock";
  // The lock file replaced under its holder: the holder knows it lost the lock.
  std::filesystem::remove(dir / "loc/journal/nightly.lock");
  EXPECT_FALSE((*a)->still_held());
  auto c = (*loc)->lock_path("journal/nightly.lock", {});
  EXPECT_TRUE(c) << "the new file is free";
  a->reset();
  EXPECT_TRUE(std::filesystem::exists(dir / "loc/journal/nightly.lock")) << "the old holder does not remove the new holder's file";
  c->reset();
  EXPECT_FALSE(std::filesystem::exists(dir / "loc/journal/nightly.lock")) << "a released run lock leaves no file";
  EXPECT_FALSE((*loc)->lock_path("../escape.lock", {}));
}

TEST(LocalRunLock, CreateNeverReplacesAFile) {
  TempDir dir;
  auto loc = open_local(dir / "loc");
  ASSERT_TRUE(loc) << loc.error().message;
  ASSERT_TRUE((*loc)->create("journal/nightly.json", "first"));
  auto again = (*loc)->create("journal/nightly.json", "second");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::kAlreadyExists);
  EXPECT_EQ(*(*loc)->get("journal/nightly.json"), "first");
  struct stat st {};
  ASSERT_EQ(::stat((dir / "loc/journal/nightly.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(*(*loc)->list("journal"), std::vector<std::string>{"nightly.json"}) << "no temporary file is left";
}

}  // namespace
}  // namespace kvb::location
