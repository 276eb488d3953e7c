// RangedDownload (src/net/ranged_download.h) against the test cluster's
// export server: `only` fetches just the given ranges, in order, and with
// hash_gaps_as_zeros the digest is the whole object's (the gaps hashed as
// the zeros they hold), also when no range is given at all.
#include "common/hex.h"
#include "kube/object.h"
#include "kubevirt/volume_export.h"
#include "net/ranged_download.h"
#include "testcluster/csi.h"
#include "tests/support/test_cluster.h"

#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <fstream>

namespace kvb::testing {
namespace {

// A stopped VM (no guest writes) with a 16 MiB volume of zeros.
const char* kScenario = R"(
storageClasses:
  - {name: fast, provisioner: csi.example.com}
namespaces:
  - name: prod
    vms:
      - {name: db, running: false, volumes: [{name: data, type: persistentVolumeClaim, size: 16Mi, storageClass: fast}]}
)";
constexpr uint64_t kMiB = 1 << 20;

std::string sha256_hex(std::string_view bytes) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), md);
  return hex_encode({md, sizeof md});
}

struct Fetched {
  std::string bytes;
  net::DownloadResult result;
};

Result<Fetched> fetch(const ClaimExport& ex, std::optional<std::vector<std::pair<uint64_t, uint64_t>>> only, bool hash_gaps) {
  net::DownloadOptions o;
  o.headers = {{kubevirt::kExportTokenHeader, ex.token}};
  o.transport.ca_pem = ex.ca_pem();
  o.range_size = kMiB / 2;
  o.only = std::move(only);
  o.hash_gaps_as_zeros = hash_gaps;
  Fetched f;
  KVB_TRY(f.result, net::download_into(ex.url("raw"), [&f](std::string&& b) -> Status {
    f.bytes += b;
    return ok();
  }, o));
  return f;
}

TEST(RangedDownload, OnlyTheGivenRangesAreFetchedAndTheDigestCanCoverTheWholeObject) {
  TestCluster tc(kScenario);
  // An untouched claim: every byte zero. No range at all still has the object's digest.
  auto blank = export_claim(tc, "prod", "db-data", "blank");
  ASSERT_TRUE(blank) << blank.error().message;
  auto none = fetch(*blank, std::vector<std::pair<uint64_t, uint64_t>>{}, true);
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_EQ(none->result.bytes, 0u);
  EXPECT_EQ(none->result.sha256, tc.claim_sha256("prod", "db-data"));

  // Data at [1 MiB, 3 MiB) and [9 MiB + 4 KiB, 9 MiB + 68 KiB).
  std::filesystem::path claim;
  tc.cluster().loop().run_sync([&] {
    auto w = tc.cluster().csi().volume_store().writable_claim_path("prod", "db-data");
    if (w) claim = *w;
  });
  ASSERT_FALSE(claim.empty());
  std::string a(2 * kMiB, 'a'), b(64 << 10, 'b');
  {
    std::fstream f(claim, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(kMiB);
    f.write(a.data(), static_cast<std::streamsize>(a.size()));
    f.seekp(9 * kMiB + 4096);
    f.write(b.data(), static_cast<std::streamsize>(b.size()));
    ASSERT_TRUE(f.good());
  }
  tc.cluster().loop().run_sync([&] { tc.cluster().csi().volume_store().claim_written("prod", "db-data"); });
  auto ex = export_claim(tc, "prod", "db-data", "data");
  ASSERT_TRUE(ex) << ex.error().message;
  const std::vector<std::pair<uint64_t, uint64_t>> ranges{{kMiB, 2 * kMiB}, {9 * kMiB + 4096, 64 << 10}};
  tc.clear_exports();
  auto got = fetch(*ex, ranges, true);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->bytes, a + b) << "the ranges' bytes, back to back, in order";
  EXPECT_EQ(got->result.bytes, a.size() + b.size());
  EXPECT_EQ(got->result.object_size, 16 * kMiB);
  EXPECT_EQ(got->result.sha256, tc.claim_sha256("prod", "db-data")) << "the gaps hashed as zeros: the whole claim's digest";
  int64_t served = 0;
  const auto log = tc.exports();
  for (const auto& q : log.at("requests").as_array()) {
    if (kube::str_at(q, {"method"}) == "GET") served += q.at("bytes").to_number<int64_t>();
  }
  EXPECT_EQ(served, static_cast<int64_t>(a.size() + b.size())) << "nothing outside the ranges was served";

  // Without hash_gaps_as_zeros the digest is of the bytes written.
  auto plain = fetch(*ex, ranges, false);
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_EQ(plain->result.sha256, sha256_hex(a + b));
}

}  // namespace
}  // namespace kvb::testing
