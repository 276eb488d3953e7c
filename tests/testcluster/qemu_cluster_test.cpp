// The test cluster with one real guest (`guest: qemu`): the VMI's AgentConnected
// comes from the real agent answering; virt-freezer in the launcher pod (run with
// the real kubectl) and the VMI's fsFreezeStatus talk to the real agent; a
// VolumeSnapshot of the guest's claim is a QMP drive-backup started at the cut,
// and /testcluster/v1/volumes says whether each copy's ext4 is clean. One boot
// for the whole binary (~10-15 s under TCG).
#include "kube/object.h"
#include "kube/watch.h"
#include "testcluster/csi.h"
#include "testcluster/guest/fs_oracle.h"
#include "testcluster/guest/qemu_guest.h"
#include "testcluster/scenario.h"
#include "tests/support/test_cluster.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <thread>
#include <unistd.h>

namespace kvb::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

const kube::ResourceRef kVmi{"kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance", true};

constexpr const char* kScenario = R"(kubevirtVersion: "1.8"
fsFreezePollInterval: 200ms
snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: 50ms, readyLatency: 50ms}]
storageClasses: [{name: fast, provisioner: csi.example.com}]
namespaces:
  - name: prod
    vms:
      - name: real
        guest: qemu
        volumes: [{name: data, type: dataVolume, size: 64Mi, storageClass: fast}]
)";

json::object snapshot_object(const std::string& name, const std::string& pvc) {
  return json::object{{"apiVersion", "snapshot.storage.k8s.io/v1"},
                      {"kind", "VolumeSnapshot"},
                      {"metadata", json::object{{"name", name}}},
                      {"spec", json::object{{"volumeSnapshotClassName", "csi-snap"},
                                            {"source", json::object{{"persistentVolumeClaimName", pvc}}}}}};
}

bool agent_connected(const json::object* o) {
  if (!o) return false;
  const auto* conds = kube::array_at(*o, {"status", "conditions"});
  if (!conds) return false;
  for (const auto& c : *conds) {
    if (kube::str_at(c, {"type"}) == "AgentConnected" && kube::str_at(c, {"status"}) == "True") return true;
  }
  return false;
}

// The guestSnapshots entry of a snapshot in /testcluster/v1/volumes.
json::object guest_snapshot(TestCluster& tc, const std::string& snapshot) {
  json::object vols = tc.volumes();
  for (const auto& v : vols["volumes"].as_array()) {
    const auto* snaps = kube::array_at(v, {"guestSnapshots"});
    if (!snaps) continue;
    for (const auto& s : *snaps) {
      if (kube::str_at(s, {"snapshot"}) == snapshot) return s.as_object();
    }
  }
  return {};
}

// Children of this process that are QEMU (none may outlive the cluster).
int qemu_children() {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::ifstream stat(e.path() / "stat");
    std::string line;
    if (!stat || !std::getline(stat, line)) continue;
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::string comm = line.substr(line.find('(') + 1, close - line.find('(') - 1);
    int ppid = 0;
    char state = 0;
    if (std::sscanf(line.c_str() + close + 1, " %c %d", &state, &ppid) != 2) continue;
    if (ppid == ::getpid() && comm.rfind("qemu-system", 0) == 0 && state != 'Z') ++n;
  }
  return n;
}

TEST(QemuCluster, RealGuestFreezesThroughVirtFreezerAndSnapshotsTellCleanFromDirty) {
  ASSERT_TRUE(kubectl_available()) << "kubectl is a real part of this test: install it (scripts/deps)";
  {
    TestCluster tc(kScenario);
    auto c = tc.client();
    auto up = kube::wait_for_object(c, kVmi, "prod", "real", agent_connected, 180s);
    ASSERT_TRUE(up) << "the real agent did not connect: " << up.error().describe()
                    << " timeline: " << json::serialize(tc.timeline());
    EXPECT_EQ(qemu_children(), 1);
    auto connected = tc.events("AgentConnected", "real");
    ASSERT_FALSE(connected.empty());
    std::printf("[measure] %s\n", std::string(kube::str_at(connected.back(), {"detail"})).c_str());

    const std::string pod = tc.launcher_pod("prod", "real");
    auto kubectl = [&](const std::string& mode) {
      auto r = run_kubectl(tc.kubeconfig(), {"exec", "-n", "prod", pod, "-c", "compute", "--", "/usr/bin/virt-freezer",
                                             "--" + mode, "--name", "real", "--namespace", "prod"});
      EXPECT_TRUE(r.has_value());
      return r ? *r : ProcessResult{};
    };

    // Frozen through virt-freezer in a Stork-style compound shell command (the
    // exec sandbox's virt-freezer reaches this launcher's real agent): the real
    // agent reports "frozen" in the VMI.
    auto compound = run_kubectl(tc.kubeconfig(), {"exec", "-n", "prod", pod, "-c", "compute", "--", "sh", "-c",
                                                  "/usr/bin/virt-freezer --freeze --name real --namespace prod && echo ok"});
    ASSERT_TRUE(compound.has_value());
    ProcessResult fr = *compound;
    ASSERT_EQ(fr.exit_code, 0) << fr.err;
    EXPECT_EQ(fr.out, "ok\n");
    auto frozen = kube::wait_for_object(
        c, kVmi, "prod", "real", [](const json::object* o) { return o && kube::str_at(*o, {"status", "fsFreezeStatus"}) == "frozen"; },
        20s);
    EXPECT_TRUE(frozen) << frozen.error().describe();
    ASSERT_TRUE(c->create(kube::resources::kVolumeSnapshots, "prod", snapshot_object("frozen-1", "real-data")));
    auto cut = kube::wait_for_object(
        c, kube::resources::kVolumeSnapshots, "prod", "frozen-1",
        [](const json::object* o) { return o && !kube::str_at(*o, {"status", "creationTime"}).empty(); }, 20s);
    ASSERT_TRUE(cut) << cut.error().describe();
    ProcessResult th = kubectl("unfreeze");  // at once: the copy is as of the cut
    ASSERT_EQ(th.exit_code, 0) << th.err;
    auto ready = [](const json::object* o) { return o && kube::bool_at(*o, {"status", "readyToUse"}).value_or(false); };
    ASSERT_TRUE(kube::wait_for_object(c, kube::resources::kVolumeSnapshots, "prod", "frozen-1", ready, 60s));
    json::object fs1 = guest_snapshot(tc, "frozen-1");
    EXPECT_EQ(kube::str_at(fs1, {"state"}), "Checked") << json::serialize(fs1);
    EXPECT_EQ(kube::bool_at(fs1, {"frozenAtCut"}), true) << json::serialize(fs1);
    EXPECT_EQ(kube::bool_at(fs1, {"fsClean"}), true) << json::serialize(fs1);
    EXPECT_EQ(kube::bool_at(fs1, {"needsRecovery"}), false) << json::serialize(fs1);
    // A claim restored from the frozen snapshot holds the guest's files as cut
    // (the QMP copy became the storage snapshot): clean, the seed file intact,
    // the writer's last renamed file whole. (Booting it would cost a third boot.)
    json::object restore{{"metadata", json::object{{"name", "real-data-restored"}}},
                         {"spec", json::object{{"storageClassName", "fast"},
                                               {"resources", json::object{{"requests", json::object{{"storage", "64Mi"}}}}},
                                               {"dataSource", json::object{{"apiGroup", "snapshot.storage.k8s.io"},
                                                                           {"kind", "VolumeSnapshot"},
                                                                           {"name", "frozen-1"}}}}}};
    ASSERT_TRUE(c->create(kube::resources::kPersistentVolumeClaims, "prod", restore));
    auto bound = kube::wait_for_object(
        c, kube::resources::kPersistentVolumeClaims, "prod", "real-data-restored",
        [](const json::object* o) { return o && kube::str_at(*o, {"status", "phase"}) == "Bound"; }, 20s);
    ASSERT_TRUE(bound) << bound.error().describe();
    std::filesystem::path restored;
    tc.cluster().loop().run_sync(
        [&] { restored = tc.cluster().csi().volume_store().claim_path("prod", "real-data-restored"); });
    auto check = testcluster::guest::inspect_ext4(restored);
    ASSERT_TRUE(check) << check.error().describe();
    EXPECT_TRUE(check->clean()) << check->fsck_output;
    auto seed = testcluster::guest::read_ext4_file(restored, testcluster::guest::GuestImage::kSeedFile);
    ASSERT_TRUE(seed) << seed.error().describe();
    EXPECT_EQ(*seed, testcluster::guest::GuestImage::kSeedContent);
    auto state = testcluster::guest::read_ext4_file(restored, "/state.txt");
    ASSERT_TRUE(state) << state.error().describe();
    EXPECT_EQ(state->rfind("generation ", 0), 0u) << "state.txt: '" << *state << "'";
    bool listed = false;
    json::object all = tc.volumes();
    for (const auto& sn : all["snapshots"].as_array()) {
      if (kube::str_at(sn, {"volumeSnapshot"}) != "frozen-1") continue;
      listed = true;
      EXPECT_EQ(kube::bool_at(sn, {"fsClean"}), true) << json::serialize(sn);
    }
    EXPECT_TRUE(listed) << "the frozen snapshot is not among the store's snapshots";

    auto thawed = kube::wait_for_object(
        c, kVmi, "prod", "real", [](const json::object* o) { return o && kube::str_at(*o, {"status", "fsFreezeStatus"}).empty(); },
        20s);
    EXPECT_TRUE(thawed) << thawed.error().describe();

    // Not frozen, under the guest's writer: the copy needs journal recovery. A
    // cut may by chance meet a fully checkpointed journal; up to 3 tries, at
    // least one must be dirty (see qemu_guest_test for the measured rate).
    int dirty = 0;
    for (int i = 0; i < 3 && dirty == 0; ++i) {
      std::string name = "unfrozen-" + std::to_string(i);
      ASSERT_TRUE(c->create(kube::resources::kVolumeSnapshots, "prod", snapshot_object(name, "real-data")));
      ASSERT_TRUE(kube::wait_for_object(c, kube::resources::kVolumeSnapshots, "prod", name, ready, 60s));
      json::object s = guest_snapshot(tc, name);
      EXPECT_EQ(kube::bool_at(s, {"frozenAtCut"}), false) << json::serialize(s);
      if (kube::bool_at(s, {"needsRecovery"}) == true) {
        ++dirty;
        EXPECT_EQ(kube::bool_at(s, {"fsClean"}), false) << json::serialize(s);
      }
    }
    EXPECT_GE(dirty, 1) << "no unfrozen snapshot of the real guest needed recovery";

    // Stopped while frozen: the guest is thawed before QEMU quits.
    ProcessResult fr2 = kubectl("freeze");
    ASSERT_EQ(fr2.exit_code, 0) << fr2.err;
    const kube::ResourceRef vm_ref{"kubevirt.io", "v1", "virtualmachines", "VirtualMachine", true};
    ASSERT_TRUE(c->patch(vm_ref, "prod", "real", kube::PatchType::kMerge, json::parse(R"({"spec":{"runStrategy":"Halted"}})")));
    std::vector<json::object> stopped;
    auto gone = kube::wait_for_object(c, kVmi, "prod", "real", [](const json::object* o) { return o == nullptr; }, 30s);
    EXPECT_TRUE(gone) << gone.error().describe();
    // The close report arrives once the worker has thawed and quit (within the grace period).
    for (int i = 0; i < 300 && stopped.empty(); ++i) {
      stopped = tc.events("GuestStopped", "real");
      if (stopped.empty()) std::this_thread::sleep_for(50ms);  // polling the simulator's record, not timing it
    }
    ASSERT_EQ(stopped.size(), 1u) << json::serialize(tc.timeline());
    std::string detail(kube::str_at(stopped[0], {"detail"}));
    EXPECT_NE(detail.find("possiblyFrozen=true thawed=true statusAfterThaw=thawed quitCleanly=true"), std::string::npos)
        << detail;
    EXPECT_EQ(qemu_children(), 0) << "QEMU still runs after its VM stopped";
  }
  EXPECT_EQ(qemu_children(), 0) << "a QEMU outlived the test cluster";
}

// The scenario field is checked like every other (no boot needed).
TEST(QemuScenario, GuestFieldIsValidated) {
  auto parse = [](const std::string& vm) {
    return testcluster::parse_scenario("namespaces:\n  - name: prod\n    vms:\n" + vm, "s.yaml");
  };
  auto bad_kind = parse("      - {name: a, guest: vmware, volumes: [{name: d, type: persistentVolumeClaim}]}\n");
  ASSERT_FALSE(bad_kind);
  EXPECT_NE(bad_kind.error().message.find("namespaces[0].vms[0].guest: \"vmware\" is not one of simulated, qemu"), std::string::npos)
      << bad_kind.error().message;
  auto two = parse("      - {name: a, count: 2, guest: qemu, volumes: [{name: d, type: persistentVolumeClaim}]}\n");
  ASSERT_FALSE(two);
  EXPECT_NE(two.error().message.find("count must be 1"), std::string::npos) << two.error().message;
  auto no_disk = parse("      - {name: a, guest: qemu, volumes: [{name: c, type: cloudInitNoCloud}]}\n");
  ASSERT_FALSE(no_disk);
  EXPECT_NE(no_disk.error().message.find("needs a dataVolume or persistentVolumeClaim"), std::string::npos)
      << no_disk.error().message;
  auto no_agent = parse("      - {name: a, guest: qemu, agent: none, volumes: [{name: d, type: persistentVolumeClaim}]}\n");
  ASSERT_FALSE(no_agent);
  auto good = parse("      - {name: a, guest: qemu, volumes: [{name: d, type: persistentVolumeClaim}]}\n");
  ASSERT_TRUE(good) << good.error().message;
  EXPECT_TRUE(good->namespaces[0].vms[0].qemu_guest);
}

}  // namespace
}  // namespace kvb::testing
