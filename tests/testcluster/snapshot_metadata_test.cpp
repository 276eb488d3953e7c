// The test cluster's SnapshotMetadata service (testcluster/snapshot_metadata_server.h)
// through kvbackup's own client (src/cbt/client.h): the CR names a TLS
// endpoint the client verifies against spec.caCert; GetMetadataDelta names
// exactly the blocks whose bytes differ between two real snapshots;
// GetMetadataAllocated the blocks that hold data; a stream cut short is
// resumed from the last range received; a token for another
// audience is refused (UNAUTHENTICATED), and so is a missing base snapshot
// (NOT_FOUND) and a server whose certificate the given CA did not issue.
#include "cbt/client.h"
#include "common/base64.h"
#include "kube/object.h"
#include "kube/resource.h"
#include "tests/support/test_cluster.h"
#include "testcluster/cluster.h"
#include "testcluster/csi.h"
#include "testcluster/snapshot_metadata_server.h"
#include "testcluster/storage/volume_store.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <stop_token>
#include <thread>

namespace kvb::testing {
namespace {
namespace json = boost::json;
using ::testing::HasSubstr;

const char* kScenario = R"(
snapshotClasses:
  - {name: csi-snap, driver: csi.example.com, cutLatency: 10ms, readyLatency: 10ms, snapshotMetadata: true}
storageClasses:
  - {name: fast, provisioner: csi.example.com}
namespaces:
  - name: prod
    vms:
      - name: db
        running: false
        volumes:
          - {name: data, type: persistentVolumeClaim, size: 16Mi, storageClass: fast}
)";

const kube::ResourceRef kSms{"cbt.storage.k8s.io", "v1beta1", "snapshotmetadataservices", "SnapshotMetadataService", false};
const kube::ResourceRef kSa{"", "v1", "serviceaccounts", "ServiceAccount", true};

struct Fixture {
  Fixture() : tc(kScenario), loc((tc.dir() / "location").string()) {
    auto sms = tc.client()->get(kSms, "", "csi.example.com");
    EXPECT_TRUE(sms) << sms.error().message;
    endpoint.address = std::string(kube::str_at(*sms, {"spec", "address"}));
    endpoint.ca_pem = base64_decode(kube::str_at(*sms, {"spec", "caCert"})).value_or("");
    audience = std::string(kube::str_at(*sms, {"spec", "audience"}));
  }
  std::string token(const std::string& aud) {
    json::object req{{"spec", json::object{{"audiences", json::array{json::string(aud)}}}}};
    auto t = tc.client()->subresource("POST", kSa, "prod", "default", "token", json::value(req));
    EXPECT_TRUE(t) << t.error().message;
    return t ? std::string(kube::str_at(*t, {"status", "token"})) : "";
  }
  // A snapshot of the (stopped) VM's volume, taken by kvbackup: its name and CSI handle.
  std::pair<std::string, std::string> snapshot(const std::string& backup) {
    auto r = run_kvbackup(tc, {"backup", "create", backup, "-n", "prod", "--location", loc, "-o", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto rec = json::parse(r.out).as_object();
    const auto& vol = rec.at("vms").as_array().at(0).at("volumes").as_array().at(0);
    std::string vs(kube::str_at(vol, {"volumeSnapshot"}));
    auto obj = tc.client()->get(kube::resources::kVolumeSnapshots, "prod", vs);
    auto vsc = tc.client()->get(kube::resources::kVolumeSnapshotContents, "", kube::str_at(*obj, {"status", "boundVolumeSnapshotContentName"}));
    return {vs, std::string(kube::str_at(*vsc, {"status", "snapshotHandle"}))};
  }
  // Writes `bytes` into the stopped VM's claim file at `offset`.
  void write_claim(uint64_t offset, const std::string& bytes) {
    std::filesystem::path p;
    tc.cluster().loop().run_sync([&] {  // its own file: a snapshot cut since may share the last one
      auto w = tc.cluster().csi().volume_store().writable_claim_path("prod", "db-data");
      if (w) p = *w;
    });
    int fd = ::open(p.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0) << p;
    ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)), static_cast<ssize_t>(bytes.size()));
    ::close(fd);
    tc.cluster().loop().run_sync([&] { tc.cluster().csi().volume_store().claim_written("prod", "db-data"); });
  }
  cbt::Call call(const std::string& tok) { return cbt::Call{endpoint, Secret(tok), "prod", std::chrono::seconds(30), {}}; }

  TestCluster tc;
  std::string loc;
  cbt::Endpoint endpoint;
  std::string audience;
};

TEST(SnapshotMetadata, DeltaAndAllocatedComeFromTheSnapshotsBytes) {
  Fixture f;
  ASSERT_EQ(f.audience, "snapshot-metadata.csi.example.com");
  f.write_claim(3 << 20, std::string(100, 'a'));
  auto [s1, h1] = f.snapshot("b1");
  // One byte changed in block 16 (1 MiB), 64 KiB across blocks 80 and 81, and the same bytes rewritten at 3 MiB.
  f.write_claim(1 << 20, "x");
  f.write_claim((5 << 20) + 1000, std::string(65536, 'b'));
  f.write_claim(3 << 20, std::string(100, 'a'));
  auto [s2, h2] = f.snapshot("b2");
  const std::string tok = f.token(f.audience);

  auto delta = cbt::get_metadata_delta(f.call(tok), h1, s2);
  ASSERT_TRUE(delta) << delta.error().message;
  EXPECT_EQ(delta->capacity, 16u << 20);
  EXPECT_EQ(delta->block_type, "FIXED_LENGTH");
  const uint64_t B = 64 << 10;
  EXPECT_EQ(delta->ranges, (std::vector<cbt::Range>{{16 * B, B}, {80 * B, 2 * B}})) << "the changed blocks, merged; not the rewritten ones";

  // The sidecar restarting after the first range: the client resumes from its end, and gets the same answer.
  testcluster::SnapshotMetadataServer* server = f.tc.cluster().snapshot_metadata().at(0).get();
  const uint64_t calls = server->calls();
  server->break_next_stream(1);
  auto resumed = cbt::get_metadata_delta(f.call(tok), h1, s2);
  ASSERT_TRUE(resumed) << resumed.error().message;
  EXPECT_EQ(resumed->resumed, 1u);
  EXPECT_EQ(server->calls(), calls + 2);
  EXPECT_EQ(resumed->ranges, delta->ranges);

  auto none = cbt::get_metadata_delta(f.call(tok), h2, s2);
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_TRUE(none->ranges.empty());

  auto alloc = cbt::get_metadata_allocated(f.call(tok), s2);
  ASSERT_TRUE(alloc) << alloc.error().message;
  uint64_t total = 0;
  for (const auto& r : alloc->ranges) total += r.length;
  EXPECT_GE(total, 3 * B) << "the three written places hold data";
  EXPECT_LT(total, 16u << 20) << "holes are not allocated";
}

TEST(SnapshotMetadata, BadTokensMissingSnapshotsAndAnUnknownCaAreRefused) {
  Fixture f;
  auto [s1, h1] = f.snapshot("b1");
  auto wrong = cbt::get_metadata_delta(f.call(f.token("somebody-else")), h1, s1);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, Errc::kUnauthorized) << wrong.error().message;
  EXPECT_THAT(wrong.error().message, HasSubstr("not a valid token"));
  auto forged = cbt::get_metadata_delta(f.call("sa-0123456789"), h1, s1);
  ASSERT_FALSE(forged);
  EXPECT_EQ(forged.error().code, Errc::kUnauthorized);

  const std::string tok = f.token(f.audience);
  auto gone = cbt::get_metadata_delta(f.call(tok), "snap-does-not-exist", s1);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, Errc::kNotFound) << gone.error().message;
  auto no_target = cbt::get_metadata_allocated(f.call(tok), "no-such-snapshot");
  ASSERT_FALSE(no_target);
  EXPECT_EQ(no_target.error().code, Errc::kNotFound) << no_target.error().message;

  // A CA that did not issue the server's certificate: no call is made.
  auto other = testcluster::make_ca("someone else's CA");
  ASSERT_TRUE(other);
  auto c = f.call(tok);
  c.endpoint.ca_pem = other->cert_pem;
  c.timeout = std::chrono::seconds(5);
  auto untrusted = cbt::get_metadata_delta(c, h1, s1);
  ASSERT_FALSE(untrusted);
  EXPECT_NE(untrusted.error().code, Errc::kUnauthorized) << untrusted.error().message;
}

// Ctrl-C during a call to a service that does not answer: the call ends at
// once with Errc::kCancelled, not at its 60 s timeout. The "service" accepts
// the connection and never speaks TLS.
TEST(SnapshotMetadata, AStopCancelsACallInFlight) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  auto ca = testcluster::make_ca("a CA");
  ASSERT_TRUE(ca);
  std::stop_source stop;
  cbt::Call call{{"127.0.0.1:" + std::to_string(ntohs(addr.sin_port)), ca->cert_pem}, Secret("t"), "prod", std::chrono::seconds(60),
                 stop.get_token()};
  Result<cbt::Ranges> got = Error(Errc::kInternal, "not run");
  const auto started = std::chrono::steady_clock::now();
  std::thread caller([&] { got = cbt::get_metadata_delta(call, "base", "target"); });
  int conn = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);  // the call is under way
  EXPECT_GE(conn, 0);
  stop.request_stop();
  caller.join();
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Errc::kCancelled) << got.error().message;
  EXPECT_LT(took, std::chrono::seconds(30)) << "ended by the stop, not the 60 s timeout";
  if (conn >= 0) ::close(conn);
  ::close(fd);

  auto before = cbt::get_metadata_delta(call, "base", "target");
  ASSERT_FALSE(before);
  EXPECT_EQ(before.error().code, Errc::kCancelled) << "a stop requested before the call: no call";
}

}  // namespace
}  // namespace kvb::testing
