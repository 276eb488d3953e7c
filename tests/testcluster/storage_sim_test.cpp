// CSI snapshots, PVC binding, DataVolumes and the guest data model of the test cluster.
#include "kube/object.h"
#include "kube/watch.h"
#include "tests/support/test_cluster.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kvb::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

const kube::ResourceRef kVm{"kubevirt.io", "v1", "virtualmachines", "VirtualMachine", true};
const kube::ResourceRef kVmi{"kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance", true};

const char* kScenario = R"(
kubevirtVersion: "1.8"
fsFreezePollInterval: 100ms
snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: 150ms, readyLatency: 400ms}]
storageClasses: [{name: fast, provisioner: csi.example.com}, {name: slow, provisioner: csi.example.com}]
namespaces:
  - name: prod
    vms:
      - name: db
        volumes:
          - {name: rootdisk, type: dataVolume, size: 10Gi, storageClass: fast}
          - {name: data, type: persistentVolumeClaim, size: 50Gi, storageClass: fast}
      - name: off
        running: false
        volumes: [{name: rootdisk, type: dataVolume, size: 5Gi, storageClass: fast}]
)";

json::object snapshot_object(const std::string& name, const std::string& pvc) {
  return json::object{{"apiVersion", "snapshot.storage.k8s.io/v1"},
                      {"kind", "VolumeSnapshot"},
                      {"metadata", json::object{{"name", name}}},
                      {"spec", json::object{{"source", json::object{{"persistentVolumeClaimName", pvc}}}}}};
}

json::object wait_snapshot(TestCluster& tc, const std::string& name, const std::function<bool(const json::object*)>& pred) {
  auto r = kube::wait_for_object(tc.client(), kube::resources::kVolumeSnapshots, "prod", name, pred, 20s);
  EXPECT_TRUE(r) << r.error().describe();
  return r ? *r : json::object();
}

bool cut(const json::object* o) { return o && !kube::str_at(*o, {"status", "creationTime"}).empty(); }
bool ready(const json::object* o) { return o && kube::bool_at(*o, {"status", "readyToUse"}).value_or(false); }

int64_t generation_of(const json::object& snap) {
  return std::atoll(std::string(kube::annotation_of(snap, "testcluster.kvbackup.io/generation")).c_str());
}

TEST(SimStorage, DataVolumesAndClaimsAreBound) {
  TestCluster tc(kScenario);
  auto dv = tc.client()->get({"cdi.kubevirt.io", "v1beta1", "datavolumes", "DataVolume", true}, "prod", "db-rootdisk");
  ASSERT_TRUE(dv);
  EXPECT_EQ(kube::str_at(*dv, {"status", "phase"}), "Succeeded");
  for (const char* claim : {"db-rootdisk", "db-data", "off-rootdisk"}) {
    auto pvc = tc.client()->get(kube::resources::kPersistentVolumeClaims, "prod", claim);
    ASSERT_TRUE(pvc) << claim;
    EXPECT_EQ(kube::str_at(*pvc, {"status", "phase"}), "Bound") << claim;
    EXPECT_FALSE(kube::str_at(*pvc, {"spec", "volumeName"}).empty());
  }
}

TEST(SimStorage, CreationTimeIsTheCutAndComesBeforeReadyToUse) {
  TestCluster tc(kScenario);
  ASSERT_TRUE(tc.client()->create(kube::resources::kVolumeSnapshots, "prod", snapshot_object("s1", "db-rootdisk")));
  auto at_cut = wait_snapshot(tc, "s1", cut);
  EXPECT_EQ(kube::bool_at(at_cut, {"status", "readyToUse"}), false) << "the cut comes before readyToUse";
  EXPECT_EQ(kube::str_at(at_cut, {"spec", "volumeSnapshotClassName"}), "csi-snap") << "the default class for the driver";
  auto done = wait_snapshot(tc, "s1", ready);
  EXPECT_EQ(kube::str_at(done, {"status", "restoreSize"}), "10Gi");
  std::string content(kube::str_at(done, {"status", "boundVolumeSnapshotContentName"}));
  auto vsc = tc.client()->get(kube::resources::kVolumeSnapshotContents, "", content);
  ASSERT_TRUE(vsc);
  EXPECT_TRUE(kube::int_at(*vsc, {"status", "creationTime"}).has_value()) << "nanoseconds on the content";
  auto cuts = tc.events("SnapshotCut", "db");
  auto readies = tc.events("SnapshotReady", "db");
  ASSERT_EQ(cuts.size(), 1u);
  ASSERT_EQ(readies.size(), 1u);
  EXPECT_LT(std::string(kube::str_at(cuts[0], {"time"})), std::string(kube::str_at(readies[0], {"time"})));
  EXPECT_EQ(kube::bool_at(cuts[0], {"frozen"}), false);
  EXPECT_EQ(kube::str_at(cuts[0], {"pvc"}), "db-rootdisk");
}

TEST(SimStorage, GenerationsStandStillWhileFrozenAndRestoresCarryThem) {
  TestCluster tc(kScenario);
  auto c = tc.client();
  // Running and unfrozen: the content changes between two cuts.
  ASSERT_TRUE(c->create(kube::resources::kVolumeSnapshots, "prod", snapshot_object("a1", "db-data")));
  auto a1 = wait_snapshot(tc, "a1", cut);
  ASSERT_TRUE(c->create(kube::resources::kVolumeSnapshots, "prod", snapshot_object("a2", "db-data")));
  auto a2 = wait_snapshot(tc, "a2", cut);
  EXPECT_LT(generation_of(a1), generation_of(a2));
  // Frozen: two cuts 150+ ms apart hold the same content, and the timeline says frozen.
  std::string pod = tc.launcher_pod("prod", "db");
  ASSERT_EQ(tc.exec("prod", pod, "compute", {"/usr/bin/virt-freezer", "--freeze", "--name", "db", "--namespace", "prod"}).exit_code, 0);
  ASSERT_TRUE(c->create(kube::resources::kVolumeSnapshots, "prod", snapshot_object("f1", "db-data")));
  auto f1 = wait_snapshot(tc, "f1", cut);
  ASSERT_TRUE(c->create(kube::resources::kVolumeSnapshots, "prod", snapshot_object("f2", "db-data")));
  auto f2 = wait_snapshot(tc, "f2", ready);
  ASSERT_EQ(tc.exec("prod", pod, "compute", {"/usr/bin/virt-freezer", "--unfreeze", "--name", "db", "--namespace", "prod"}).exit_code, 0);
  EXPECT_EQ(generation_of(f1), generation_of(f2));
  EXPECT_GE(generation_of(f1), generation_of(a2));
  for (const auto& e : tc.events("SnapshotCut", "db")) {
    std::string snap(kube::str_at(e, {"volumeSnapshot"}));
    EXPECT_EQ(kube::bool_at(e, {"frozen"}), snap[0] == 'f') << snap;
  }
  // A claim restored from f2 holds exactly f2's generation.
  json::object restore{{"apiVersion", "v1"},
                       {"kind", "PersistentVolumeClaim"},
                       {"metadata", json::object{{"name", "db-data-restored"}}},
                       {"spec", json::object{{"storageClassName", "slow"},
                                             {"accessModes", json::array{"ReadWriteOnce"}},
                                             {"volumeMode", "Block"},  // as the source claim's
                                             {"resources", json::object{{"requests", json::object{{"storage", "50Gi"}}}}},
                                             {"dataSource", json::object{{"apiGroup", "snapshot.storage.k8s.io"},
                                                                         {"kind", "VolumeSnapshot"},
                                                                         {"name", "f2"}}}}}};
  ASSERT_TRUE(c->create(kube::resources::kPersistentVolumeClaims, "prod", restore));
  auto pvc = c->get(kube::resources::kPersistentVolumeClaims, "prod", "db-data-restored");
  ASSERT_TRUE(pvc);
  EXPECT_EQ(kube::str_at(*pvc, {"status", "phase"}), "Bound");
  EXPECT_EQ(generation_of(*pvc), generation_of(f2));
  bool found = false;
  json::object vols = tc.volumes();
  for (const auto& v : vols.at("volumes").as_array()) {
    if (kube::str_at(v, {"pvc"}) != "db-data-restored") continue;
    found = true;
    EXPECT_EQ(kube::int_at(v, {"restoredFromGeneration"}), generation_of(f2));
    EXPECT_EQ(kube::str_at(v, {"restoredFromSnapshot"}), "f2");
  }
  EXPECT_TRUE(found);
}

TEST(SimStorage, RestoreWaitsForReadyAndRejectsATooSmallClaim) {
  TestCluster tc(kScenario);
  auto c = tc.client();
  ASSERT_TRUE(c->create(kube::resources::kVolumeSnapshots, "prod", snapshot_object("s", "db-rootdisk")));
  auto claim = [](const std::string& name, const std::string& size) {
    return json::object{{"metadata", json::object{{"name", name}}},
                        {"spec", json::object{{"storageClassName", "fast"},
                                              {"resources", json::object{{"requests", json::object{{"storage", size}}}}},
                                              {"dataSource", json::object{{"apiGroup", "snapshot.storage.k8s.io"},
                                                                          {"kind", "VolumeSnapshot"},
                                                                          {"name", "s"}}}}}};
  };
  ASSERT_TRUE(c->create(kube::resources::kPersistentVolumeClaims, "prod", claim("early", "10Gi")));
  EXPECT_EQ(kube::str_at(*c->get(kube::resources::kPersistentVolumeClaims, "prod", "early"), {"status", "phase"}), "Pending");
  wait_snapshot(tc, "s", ready);
  auto bound = kube::wait_for_object(c, kube::resources::kPersistentVolumeClaims, "prod", "early",
                                     [](const json::object* o) { return o && kube::str_at(*o, {"status", "phase"}) == "Bound"; }, 10s);
  EXPECT_TRUE(bound) << "bound once the snapshot became ready";
  ASSERT_TRUE(c->create(kube::resources::kPersistentVolumeClaims, "prod", claim("small", "1Gi")));
  EXPECT_EQ(kube::str_at(*c->get(kube::resources::kPersistentVolumeClaims, "prod", "small"), {"status", "phase"}), "Pending");
}

TEST(SimStorage, SnapshotErrorsAndInjectedFailures) {
  TestCluster tc(kScenario);
  auto c = tc.client();
  ASSERT_TRUE(c->create(kube::resources::kVolumeSnapshots, "prod", snapshot_object("nopvc", "does-not-exist")));
  auto e = c->get(kube::resources::kVolumeSnapshots, "prod", "nopvc");
  ASSERT_TRUE(e);
  EXPECT_THAT(std::string(kube::str_at(*e, {"status", "error", "message"})), HasSubstr("not found"));
  tc.add_fault(R"({"type":"snapshot-fail","pvc":"db-data","message":"disk array on fire"})");
  ASSERT_TRUE(c->create(kube::resources::kVolumeSnapshots, "prod", snapshot_object("bad", "db-data")));
  auto failed = wait_snapshot(tc, "bad", [](const json::object* o) {
    return o && !kube::str_at(*o, {"status", "error", "message"}).empty();
  });
  EXPECT_EQ(kube::str_at(failed, {"status", "error", "message"}), "disk array on fire");
  EXPECT_TRUE(kube::str_at(failed, {"status", "creationTime"}).empty());
  EXPECT_EQ(tc.events("SnapshotFailed", "db").size(), 1u);
}

// GET /testcluster/v1/stats says where a cut spent the loop thread: one cut,
// its timer's lateness, its file work and the whole cut, the loop's CPU and
// the time each kind of request held the loop.
TEST(SimStorage, StatsShowWhereACutSpendsTheLoop) {
  TestCluster tc(kScenario);
  ASSERT_TRUE(tc.client()->create(kube::resources::kVolumeSnapshots, "prod", snapshot_object("s1", "db-rootdisk")));
  wait_snapshot(tc, "s1", ready);
  auto st = tc.stats();
  const auto& cuts = st.at("cuts").as_object();
  for (const char* part : {"lateness", "fileWork", "total"}) {
    EXPECT_EQ(cuts.at(part).at("count").to_number<uint64_t>(), 1u) << part;
    EXPECT_GE(cuts.at(part).at("maxMs").to_number<double>(), 0.0) << part;
  }
  EXPECT_GE(cuts.at("total").at("maxMs").to_number<double>(), cuts.at("fileWork").at("maxMs").to_number<double>());
  EXPECT_GT(st.at("loop").at("cpuMs").to_number<double>(), 0.0);
  EXPECT_GE(st.at("loop").at("timerLateness").at("count").to_number<uint64_t>(), 2u) << "the cut and the ready timers";
  EXPECT_EQ(st.at("handled").at("create volumesnapshots").at("count").to_number<uint64_t>(), 1u);
}

TEST(SimStorage, StoppingAndStartingAVm) {
  TestCluster tc(kScenario);
  auto c = tc.client();
  auto first = c->get(kVmi, "prod", "db");
  ASSERT_TRUE(first);
  ASSERT_TRUE(c->patch(kVm, "prod", "db", kube::PatchType::kMerge, json::parse(R"({"spec":{"runStrategy":"Halted"}})")));
  EXPECT_FALSE(c->get(kVmi, "prod", "db"));
  EXPECT_EQ(tc.launcher_pod("prod", "db"), "");
  auto vm = c->get(kVm, "prod", "db");
  EXPECT_EQ(kube::str_at(*vm, {"status", "printableStatus"}), "Stopped");
  ASSERT_TRUE(c->patch(kVm, "prod", "db", kube::PatchType::kMerge, json::parse(R"({"spec":{"runStrategy":"Always"}})")));
  auto second = c->get(kVmi, "prod", "db");
  ASSERT_TRUE(second);
  EXPECT_NE(kube::uid_of(*first), kube::uid_of(*second));
  EXPECT_EQ(kube::str_at(*c->get(kVm, "prod", "db"), {"status", "printableStatus"}), "Running");
  EXPECT_EQ(kube::str_at(*c->get(kVm, "prod", "off"), {"status", "printableStatus"}), "Stopped");
  EXPECT_FALSE(c->get(kVmi, "prod", "off"));
}

}  // namespace
}  // namespace kvb::testing
