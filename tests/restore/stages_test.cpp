// Where a restore's time went (restore/record.h StageMillis) survives the
// record's round trip, and the uploader's side digest (restore/side_digest.h)
// is the SHA-256 of every range handed to it, in order.
#include "common/hex.h"
#include "restore/record.h"
#include "restore/side_digest.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <random>
#include <vector>

namespace kvb::restore {
namespace {
namespace json = boost::json;

std::string sha256_hex(const std::vector<uint8_t>& bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
  return hex_encode({md, len});
}

TEST(RestoreStages, MillisAddUpPerStageAndSurviveTheRecordsRoundTrip) {
  RestoreRecord rec;
  rec.name = "r1";
  rec.backup = "b1";
  rec.started = WallClock::now();
  add_millis(rec.millis, "plan", 12);
  add_millis(rec.millis, "vms", 300);
  VmRestoreRecord vm;
  vm.ns = "dr";
  vm.name = "db";
  add_millis(vm.millis, "claims", 3);
  add_millis(vm.millis, "uploads", 250);
  add_millis(vm.millis, "cleanup", 0);
  ClaimRecord c;
  c.claim = "db-rootdisk";
  add_millis(c.millis, "token", 2);
  add_millis(c.millis, "transfer", 100);
  add_millis(c.millis, "token", 3);  // a second attempt: the sum
  vm.claims.push_back(c);
  rec.vms.push_back(vm);
  EXPECT_EQ(millis_of(c.millis, "token"), 5);
  EXPECT_EQ(millis_of(c.millis, "succeeded"), 0);

  auto back = RestoreRecord::from_json(json::parse(json::serialize(rec.to_json())), "restore.json");
  ASSERT_TRUE(back) << back.error().describe();
  EXPECT_EQ(back->millis, rec.millis);
  EXPECT_EQ(back->vms.at(0).millis, rec.vms[0].millis);
  EXPECT_EQ(back->vms.at(0).claims.at(0).millis, (StageMillis{{"token", 5}, {"transfer", 100}}));

  // A record from before the stages existed reads as none; a negative one is refused.
  json::object old = rec.to_json();
  old.erase("millis");
  auto without = RestoreRecord::from_json(old, "old.json");
  ASSERT_TRUE(without) << without.error().describe();
  EXPECT_TRUE(without->millis.empty());
  json::object bad = rec.to_json();
  bad["millis"] = json::object{{"plan", -1}};
  auto refused = RestoreRecord::from_json(bad, "bad.json");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("negative"), std::string::npos) << refused.error().message;
}

TEST(RestoreSideDigest, IsTheSha256OfEveryRangeInOrder) {
  std::mt19937_64 rng(5);
  std::vector<uint8_t> all(3 << 20);
  for (auto& b : all) b = static_cast<uint8_t>(rng());
  std::fill(all.begin() + (1 << 20), all.begin() + (2 << 20), 0);  // a zero extent, as the repository streams it
  SideDigest d;
  size_t at = 0;
  for (size_t n : {size_t{1}, size_t{4095}, size_t{1} << 20, size_t{777}, size_t{0}}) {
    d.begin({all.data() + at, n});
    d.end();
    at += n;
  }
  d.begin({all.data() + at, all.size() - at});
  d.end();
  EXPECT_EQ(d.hex(), sha256_hex(all));

  SideDigest empty;
  EXPECT_EQ(empty.hex(), sha256_hex({}));
}

}  // namespace
}  // namespace kvb::restore
