// An S3 location: the Location operations on radosgw, the open modes, and
// the lock objects (two processes on one repository never both hold an
// exclusive lock; a stale lock is ignored; a broken lock is noticed).
#include "location/s3/s3_location.h"
#include "tests/location/s3_test_options.h"
#include "tests/support/s3_servers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <thread>

namespace kvb::location::s3 {
namespace {
using ::testing::HasSubstr;
using kvb::testing::S3Server;

std::unique_ptr<Location> open_or_die(const S3Server& s, const std::string& prefix, OpenMode mode = OpenMode::kCreate, LockTimings t = {}) {
  auto l = open_s3(kvb::testing::s3_url(s, prefix), mode, options_for(s, t));
  if (!l) throw std::runtime_error(l.error().message);
  return std::move(*l);
}

TEST(S3Location, FilesDirectoriesAndOpenModes) {
  const auto& s = kvb::testing::radosgw();
  ASSERT_TRUE(s.ok);
  auto missing = open_s3(kvb::testing::s3_url(s, "loc-test/typo"), OpenMode::kExisting, options_for(s));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::kNotFound);
  EXPECT_THAT(missing.error().message, HasSubstr("s3://kvbtest/loc-test/typo does not exist"));

  auto loc = open_or_die(s, "loc-test/one");
  EXPECT_EQ(loc->describe(), "s3://kvbtest/loc-test/one");
  EXPECT_FALSE(loc->local_root());
  ASSERT_TRUE(loc->put("backups/b1/backup.json", "{\"a\":1}"));
  ASSERT_TRUE(loc->put_deferred("backups/b1/resources/prod/vm.json", "{}"));
  ASSERT_TRUE(loc->sync());
  ASSERT_TRUE(loc->put("backups/b2/backup.json", "{}"));
  EXPECT_EQ(*loc->get("backups/b1/backup.json"), "{\"a\":1}");
  EXPECT_EQ(*loc->read_range("backups/b1/backup.json", 2, 3), "a\":");
  EXPECT_FALSE(loc->read_range("backups/b1/backup.json", 2, 300));
  EXPECT_TRUE(loc->exists("backups/b1/backup.json"));
  EXPECT_TRUE(loc->exists("backups/b1")) << "a directory exists when something is under it";
  EXPECT_FALSE(loc->exists("backups/b3"));
  EXPECT_EQ(*loc->list("backups"), (std::vector<std::string>{"b1", "b2"}));
  EXPECT_EQ(*loc->list("backups/b1"), (std::vector<std::string>{"backup.json", "resources"}));
  auto walked = loc->walk("backups");
  ASSERT_TRUE(walked);
  ASSERT_EQ(walked->size(), 3u);
  EXPECT_EQ((*walked)[0].path, "backups/b1/backup.json");
  EXPECT_EQ((*walked)[0].size, 7u);
  EXPECT_LT(std::chrono::system_clock::now() - (*walked)[0].mtime, std::chrono::minutes(10));
  ASSERT_TRUE(loc->remove("backups/b1"));
  EXPECT_EQ(*loc->list("backups"), (std::vector<std::string>{"b2"}));
  EXPECT_FALSE(loc->get("backups/b1/backup.json"));
  EXPECT_FALSE(loc->put("../escape", "x"));
  auto existing = open_s3(kvb::testing::s3_url(s, "loc-test/one"), OpenMode::kExisting, options_for(s));
  EXPECT_TRUE(existing) << "a prefix with objects exists";
}

TEST(S3Location, TwoExclusiveLocksNeverBothSucceed) {
  const auto& s = kvb::testing::radosgw();
  ASSERT_TRUE(s.ok);
  auto a = open_or_die(s, "lock-test/race");
  auto b = open_or_die(s, "lock-test/race");
  // Many rounds of two threads racing for the exclusive lock: never both.
  for (int round = 0; round < 6; ++round) {
    Result<std::unique_ptr<Lock>> la = Error(Errc::kUnknown, ""), lb = Error(Errc::kUnknown, "");
    std::thread ta([&] { la = a->lock(LockMode::kExclusive, std::chrono::milliseconds(0)); });
    std::thread tb([&] { lb = b->lock(LockMode::kExclusive, std::chrono::milliseconds(0)); });
    ta.join();
    tb.join();
    EXPECT_FALSE(la && lb) << "round " << round << ": both held the exclusive lock";
    if (!la) {
      EXPECT_EQ(la.error().code, Errc::kConflict) << la.error().message;
    }
    if (!lb) {
      EXPECT_EQ(lb.error().code, Errc::kConflict) << lb.error().message;
    }
  }
  // Shared locks coexist; an exclusive one waits for them and names the holder.
  auto s1 = a->lock(LockMode::kShared, {});
  auto s2 = b->lock(LockMode::kShared, {});
  ASSERT_TRUE(s1) << s1.error().message;
  ASSERT_TRUE(s2) << s2.error().message;
  auto ex = a->lock(LockMode::kExclusive, std::chrono::milliseconds(300));
  ASSERT_FALSE(ex);
  EXPECT_THAT(ex.error().message, HasSubstr("kvbackup pid"));
  EXPECT_THAT(ex.error().message, HasSubstr("s3://kvbtest/lock-test/race is locked"));
  s1->reset();
  s2->reset();
  auto ex2 = a->lock(LockMode::kExclusive, std::chrono::milliseconds(2000));
  ASSERT_TRUE(ex2) << ex2.error().message;
  auto shared_denied = b->lock(LockMode::kShared, {});
  EXPECT_FALSE(shared_denied) << "no shared lock while an exclusive one is held";
}

TEST(S3Location, StaleLocksAreIgnoredAndABrokenLockIsNoticed) {
  const auto& s = kvb::testing::radosgw();
  ASSERT_TRUE(s.ok);
  auto loc = open_or_die(s, "lock-test/stale");
  // A lock object of a process on another host that expired long ago.
  ASSERT_TRUE(loc->put("locks/0123456789abcdef0123456789abcdef",
                       R"({"host":"gone-host","pid":4242,"mode":"exclusive","time":"2020-01-01T00:00:00.000Z","expires":"2020-01-01T00:15:00.000Z"})"));
  auto l = loc->lock(LockMode::kExclusive, {});
  ASSERT_TRUE(l) << "a stale lock is ignored: " << l.error().message;
  EXPECT_FALSE(loc->exists("locks/0123456789abcdef0123456789abcdef")) << "and removed";
  EXPECT_TRUE((*l)->still_held());
  // Someone deletes our lock object: the holder notices.
  auto locks = loc->list("locks");
  ASSERT_EQ(locks->size(), 1u);
  ASSERT_TRUE(loc->remove("locks/" + locks->front()));
  auto held = (*l)->still_held();
  ASSERT_FALSE(held);
  EXPECT_THAT(held.error().message, HasSubstr("was lost"));
  l->reset();
  EXPECT_TRUE(loc->list("locks")->empty()) << "a released lock leaves no object";

  // A live lock of another process is not stale: refreshed, it stays valid past its first expiry.
  LockTimings quick{std::chrono::milliseconds(200), std::chrono::milliseconds(1500), std::chrono::milliseconds(0)};
  auto holder = open_or_die(s, "lock-test/stale", OpenMode::kCreate, quick);
  auto h = holder->lock(LockMode::kShared, {});
  ASSERT_TRUE(h);
  auto other = open_or_die(s, "lock-test/stale", OpenMode::kCreate, quick);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(3000);
  while (std::chrono::steady_clock::now() < deadline) {
    auto ex = other->lock(LockMode::kExclusive, {});
    ASSERT_FALSE(ex) << "a refreshed lock never turned stale";
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  EXPECT_TRUE((*h)->still_held());
}

}  // namespace
}  // namespace kvb::location::s3
