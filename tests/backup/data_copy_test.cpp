// `kvbackup backup create --copy-data` end to end against the test cluster's
// real bytes and VirtualMachineExports (docs/backup.md "Copying the data"):
// the copies hold exactly the snapshots' bytes (the oracle's SHA-256), an
// exporter restart mid-transfer is resumed with Range requests, a wrong
// repository password costs no freeze, an API error on the export leaves the
// VM PartiallyFailed and thawed, and no temporary object is ever left behind
// (checked with kubectl).
#include "common/subprocess.h"
#include "kube/object.h"
#include "tests/support/test_cluster.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace kvb::testing {
namespace {
namespace json = boost::json;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

const char* kTwoDisks = R"(
snapshotClasses:
  - {name: csi-snap, driver: csi.example.com, cutLatency: 100ms, readyLatency: 50ms}
storageClasses:
  - {name: fast, provisioner: csi.example.com}
namespaces:
  - name: prod
    vms:
      - name: db
        volumes:
          - {name: rootdisk, type: dataVolume, size: 64Mi, storageClass: fast}
          - {name: data, type: persistentVolumeClaim, size: 40Mi, storageClass: fast}
)";

// The test cluster, a location and a repository password; the oracle's checks.
struct Fixture {
  explicit Fixture(const std::string& scenario) : tc(scenario) {}
  void expect_nothing_frozen() {
    const boost::json::object vms = tc.vms();
    for (const auto& v : vms.at("vms").as_array()) {
      EXPECT_FALSE(v.at("frozen").as_bool()) << "left frozen: " << kube::str_at(v, {"name"});
    }
  }
  TestCluster tc;
};

class DataCopy {
 public:
  DataCopy() : f(kTwoDisks), loc((f.tc.dir() / "location").string()), pw((f.tc.dir() / "password").string()) {
    f.tc.dir().write("password", "correct horse battery staple\n", 0600);
    f.tc.dir().write("wrong-password", "tr0ub4dor&3\n", 0600);
  }

  ProcessResult backup(const std::string& name, const std::string& password_file) {
    return run_kvbackup(f.tc, {"backup", "create", name, "-n", "prod", "--location", loc, "--copy-data", "--password-file",
                               password_file, "-o", "json"});
  }

  // No claim, export or Secret of a copy is left, as kubectl (a real client) sees it.
  void expect_no_temporaries() {
    auto k = run_kubectl(f.tc.kubeconfig(),
                         {"get", "pvc,virtualmachineexports,secrets", "-A", "-l", "kvbackup.io/role=data-copy", "-o", "name"});
    ASSERT_TRUE(k) << "kubectl is required";
    EXPECT_EQ(k->exit_code, 0) << k->err;
    EXPECT_EQ(k->out, "") << "temporaries left behind";
    auto pods = run_kubectl(f.tc.kubeconfig(), {"get", "pods", "-A", "-l", "kubevirt.io.virt-export-service", "-o", "name"});
    ASSERT_TRUE(pods);
    EXPECT_EQ(pods->out, "") << "exporter pods left behind";
  }

  // The GET requests the exporter served, and how many came through the exporter pod (port-forward).
  std::pair<int, int> served_gets() {
    int all = 0, via_pod = 0;
    const json::object served = f.tc.exports();
    for (const auto& q : served.at("requests").as_array()) {
      if (kube::str_at(q, {"method"}) != "GET") continue;
      ++all;
      if (kube::str_at(q, {"via"}) == "pod") ++via_pod;
    }
    return {all, via_pod};
  }

  std::string sha256_file(const std::string& path) {
    ProcessSpec s;
    s.argv = {"sha256sum", path};
    auto r = run_process(s);
    return r ? r->out.substr(0, 64) : "";
  }

  Fixture f;
  std::string loc, pw;
};

json::object vm_of(const json::object& rec, const std::string& name) {
  for (const auto& v : rec.at("vms").as_array()) {
    if (kube::str_at(v, {"name"}) == name) return v.as_object();
  }
  return {};
}

TEST(DataCopy, EachCopyHoldsTheSnapshotsBytesAndNothingIsLeft) {
  DataCopy d;
  auto r = d.backup("b1", d.pw);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto rec = json::parse(r.out).as_object();
  auto db = vm_of(rec, "db");
  EXPECT_EQ(kube::str_at(db, {"phase"}), "Completed") << r.err;
  EXPECT_EQ(kube::str_at(db, {"consistency"}), "FileSystemConsistent");
  const auto& vols = db.at("volumes").as_array();
  ASSERT_EQ(vols.size(), 2u);
  for (const auto& v : vols) {
    std::string snap(kube::str_at(v, {"volumeSnapshot"}));
    std::string oracle = d.f.tc.snapshot_sha256("prod", snap);
    ASSERT_EQ(oracle.size(), 64u) << snap << ": " << oracle;
    const auto* copy = kube::object_at(v, {"copy"});
    ASSERT_TRUE(copy) << snap;
    EXPECT_EQ(kube::str_at(*copy, {"sha256"}), oracle) << snap;
    EXPECT_EQ(kube::str_at(*copy, {"error"}), "");
    EXPECT_EQ(kube::str_at(*copy, {"transport"}), "external") << "the export had links.external";
    // The repository gives back exactly those bytes.
    std::string id(kube::str_at(*copy, {"repositorySnapshot"}));
    std::string out = (d.f.tc.dir() / ("restored-" + snap)).string();
    auto g = run_kvbackup(d.f.tc, {"repo", "get", "--repo", d.loc + "/repository", "--password-file", d.pw, id, out});
    ASSERT_EQ(g.exit_code, 0) << g.err;
    EXPECT_EQ(d.sha256_file(out), oracle) << snap;
  }
  // The two volumes' snapshots hold different bytes (two claims, two writers).
  EXPECT_NE(kube::str_at(*kube::object_at(vols.at(0), {"copy"}), {"sha256"}),
            kube::str_at(*kube::object_at(vols.at(1), {"copy"}), {"sha256"}));
  d.f.expect_nothing_frozen();
  d.expect_no_temporaries();
}

TEST(DataCopy, AnExporterRestartMidTransferIsResumedWithRanges) {
  DataCopy d;
  d.f.tc.add_fault(R"({"type": "export-restart", "afterBytes": 41943040, "count": 1})");  // 40 MiB
  auto r = d.backup("b2", d.pw);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto rec = json::parse(r.out).as_object();
  auto db = vm_of(rec, "db");
  EXPECT_EQ(kube::str_at(db, {"phase"}), "Completed");
  int64_t retried = 0;
  for (const auto& v : db.at("volumes").as_array()) {
    const auto* copy = kube::object_at(v, {"copy"});
    ASSERT_TRUE(copy);
    EXPECT_EQ(kube::str_at(*copy, {"sha256"}), d.f.tc.snapshot_sha256("prod", std::string(kube::str_at(v, {"volumeSnapshot"}))));
    retried += copy->at("retriedRanges").to_number<int64_t>();
  }
  EXPECT_GE(retried, 1) << "the record says a range was fetched again";
  // The server's view: one restart, transfers cut by it, and afterwards Range
  // requests that do not start at byte 0 (a resume, not a restart from 0).
  auto ex = d.f.tc.exports();
  EXPECT_EQ(ex.at("restarts").to_number<int64_t>(), 1);
  int cut = 0, resumed_after = 0;
  int64_t served = 0;
  for (const auto& q : ex.at("requests").as_array()) {
    if (kube::str_at(q, {"method"}) != "GET") continue;
    served += q.as_object().contains("bytes") ? q.at("bytes").to_number<int64_t>() : 0;
    bool complete = q.as_object().contains("complete") && q.at("complete").as_bool();
    if (!complete && q.at("restartsBefore").to_number<int64_t>() == 0) ++cut;
    std::string range(kube::str_at(q, {"range"}));
    if (complete && q.at("restartsBefore").to_number<int64_t>() == 1 && !range.empty() && range.rfind("bytes=0-", 0) != 0) {
      ++resumed_after;
    }
  }
  EXPECT_GE(cut, 1) << "the restart cut a transfer";
  EXPECT_GE(resumed_after, 1) << "ranges after the restart";
  EXPECT_LT(served, int64_t{104} << 20 << 1) << "less than twice the images: nothing started over from 0";
  d.f.expect_nothing_frozen();
  d.expect_no_temporaries();
}

TEST(DataCopy, AWrongRepositoryPasswordFailsBeforeAnythingIsFrozen) {
  DataCopy d;
  auto first = d.backup("b1", d.pw);  // creates the repository
  ASSERT_EQ(first.exit_code, 0) << first.err;
  size_t freezes = d.f.tc.events("Freeze").size();
  auto r = d.backup("b2", (d.f.tc.dir() / "wrong-password").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("repository"));
  EXPECT_THAT(r.err, ::testing::AnyOf(HasSubstr("password"), HasSubstr("key")));
  EXPECT_EQ(d.f.tc.events("Freeze").size(), freezes) << "no freeze for a backup that cannot copy";
  d.f.expect_nothing_frozen();
  d.expect_no_temporaries();
}

TEST(DataCopy, AnApiErrorOnTheExportLeavesTheVmPartiallyFailedAndThawed) {
  DataCopy d;
  d.f.tc.add_fault(R"({"type": "api-error", "verb": "create", "resource": "virtualmachineexports", "code": 500,
                       "message": "simulated export webhook failure"})");
  auto r = d.backup("b3", d.pw);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  auto rec = json::parse(r.out).as_object();
  auto db = vm_of(rec, "db");
  EXPECT_EQ(kube::str_at(db, {"phase"}), "PartiallyFailed");
  EXPECT_THAT(std::string(kube::str_at(db, {"reason"})), HasSubstr("was not copied into the repository"));
  EXPECT_THAT(json::serialize(db), HasSubstr("simulated export webhook failure"));
  EXPECT_EQ(kube::str_at(db, {"consistency"}), "FileSystemConsistent") << "the snapshots themselves are good";
  EXPECT_FALSE(d.f.tc.vm_state("prod", "db").at("frozen").as_bool());
  EXPECT_FALSE(d.f.tc.events("Thaw", "db").empty());
  d.expect_no_temporaries();
}

TEST(DataCopy, WithoutAnIngressTheCopyGoesThroughPortForwardsToTheExporterPod) {
  DataCopy d;
  d.f.tc.add_fault(R"({"type": "export-no-ingress"})");
  auto r = d.backup("pf1", d.pw);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("has no external link: reading it through port-forward to pod virt-export-"));
  auto rec = json::parse(r.out).as_object();
  auto db = vm_of(rec, "db");
  EXPECT_EQ(kube::str_at(db, {"phase"}), "Completed") << r.err;
  for (const auto& v : db.at("volumes").as_array()) {
    std::string snap(kube::str_at(v, {"volumeSnapshot"}));
    const auto* copy = kube::object_at(v, {"copy"});
    ASSERT_TRUE(copy) << snap;
    EXPECT_EQ(kube::str_at(*copy, {"transport"}), "port-forward") << snap;
    EXPECT_EQ(kube::str_at(*copy, {"sha256"}), d.f.tc.snapshot_sha256("prod", snap)) << snap;
  }
  auto [all, via_pod] = d.served_gets();
  EXPECT_GT(all, 2) << "ranges in parallel";
  EXPECT_EQ(via_pod, all) << "every request came through the exporter pod, none through the proxy";
  // The record on the location says so too (what `backup describe` reads).
  auto desc = run_kvbackup(d.f.tc, {"backup", "describe", "pf1", "--location", d.loc, "-o", "json"});
  ASSERT_EQ(desc.exit_code, 0) << desc.err;
  EXPECT_THAT(desc.out, HasSubstr("\"transport\":\"port-forward\""));
  auto text = run_kvbackup(d.f.tc, {"backup", "describe", "pf1", "--location", d.loc});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr(", via port-forward"));
  d.f.expect_nothing_frozen();
  d.expect_no_temporaries();
}

TEST(DataCopy, AnExporterRestartOverTheTunnelIsResumedWithRanges) {
  DataCopy d;
  d.f.tc.add_fault(R"({"type": "export-no-ingress"})");
  d.f.tc.add_fault(R"({"type": "export-restart", "afterBytes": 41943040, "count": 1})");  // 40 MiB
  auto r = d.backup("pf2", d.pw);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto db = vm_of(json::parse(r.out).as_object(), "db");
  EXPECT_EQ(kube::str_at(db, {"phase"}), "Completed");
  int64_t retried = 0;
  for (const auto& v : db.at("volumes").as_array()) {
    const auto* copy = kube::object_at(v, {"copy"});
    ASSERT_TRUE(copy);
    EXPECT_EQ(kube::str_at(*copy, {"transport"}), "port-forward");
    EXPECT_EQ(kube::str_at(*copy, {"sha256"}), d.f.tc.snapshot_sha256("prod", std::string(kube::str_at(v, {"volumeSnapshot"}))));
    retried += copy->at("retriedRanges").to_number<int64_t>();
  }
  EXPECT_GE(retried, 1) << "a range was fetched again through a new tunnel";
  auto ex = d.f.tc.exports();
  EXPECT_EQ(ex.at("restarts").to_number<int64_t>(), 1);
  int64_t served = 0;
  int resumed_after = 0;
  for (const auto& q : ex.at("requests").as_array()) {
    if (kube::str_at(q, {"method"}) != "GET") continue;
    EXPECT_EQ(kube::str_at(q, {"via"}), "pod");
    served += q.as_object().contains("bytes") ? q.at("bytes").to_number<int64_t>() : 0;
    std::string range(kube::str_at(q, {"range"}));
    bool complete = q.as_object().contains("complete") && q.at("complete").as_bool();
    if (complete && q.at("restartsBefore").to_number<int64_t>() == 1 && range.rfind("bytes=0-", 0) != 0) ++resumed_after;
  }
  EXPECT_GE(resumed_after, 1) << "ranges after the restart, not from byte 0";
  EXPECT_LT(served, int64_t{104} << 20 << 1) << "less than twice the images: nothing started over from 0";
  d.f.expect_nothing_frozen();
  d.expect_no_temporaries();
}

}  // namespace
}  // namespace kvb::testing
