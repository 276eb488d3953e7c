// The test cluster with one real guest (`guest: qemu`): the VMI's AgentConnected
// comes from the real agent answering; virt-freezer in the launcher pod (run with
// the real kubectl) and the VMI's fsFreezeStatus talk to the real agent; a
// VolumeSnapshot of the guest's claim is a QMP drive-backup started at the cut,
// and /testcluster/v1/volumes says whether each copy's ext4 is clean.
// Then disaster recovery with that guest (issue 18 item 3, docs/restore.md):
// a file written in the guest through its agent, `backup create --copy-data`
// (the guest frozen at the cut), the cluster deleted, and `restore create
// --data-source repository --verify` into a second cluster: the restored
// claim's bytes equal the copy's, its ext4 is clean with the file in it, and
// the verification copy boots under QEMU, its agent connects and reads the
// file back. Two boots for the whole binary (~10-15 s each under TCG): the
// source guest and the verification copy.
#include "common/base64.h"
#include "kube/object.h"
#include "kube/watch.h"
#include "testcluster/csi.h"
#include "testcluster/qemu_vms.h"
#include "testcluster/guest/fs_oracle.h"
#include "testcluster/guest/qemu_guest.h"
#include "testcluster/scenario.h"
#include "tests/support/test_cluster.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <future>
#include <mutex>
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

// An agent command to a running real guest of tc, through the cluster's QemuVms (loop thread).
Result<json::value> agent(TestCluster& tc, const std::string& key, const std::string& command, const json::object& args) {
  auto done = std::make_shared<std::promise<Result<std::string>>>();
  auto answer = done->get_future();
  tc.cluster().loop().run_sync([&] {
    tc.cluster().qemu().agent_call(key, command, json::serialize(args), [done](Result<std::string> r) { done->set_value(r); });
  });
  if (answer.wait_for(60s) != std::future_status::ready) return Error(Errc::kTimeout, command + ": no answer within 60 s");
  KVB_TRY(auto text, answer.get());
  return json::parse(text);
}

// Reads a file in a guest through its agent (guest-file-open / -read / -close).
Result<std::string> read_guest_file(testcluster::guest::QemuGuest& g, const std::string& path) {
  KVB_TRY(auto h, g.agent_call("guest-file-open", json::serialize(json::object{{"path", path}, {"mode", "r"}})));
  std::string handle = h;
  auto read = g.agent_call("guest-file-read", "{\"handle\":" + handle + ",\"count\":65536}");
  (void)g.agent_call("guest-file-close", "{\"handle\":" + handle + "}");
  if (!read) return read.error();
  auto v = json::parse(*read);
  auto bytes = base64_decode(kube::str_at(v, {"buf-b64"}));
  if (!bytes) return Error(Errc::kInternal, "guest-file-read: bad base64");
  return *bytes;
}

constexpr const char* kDrTarget = R"(storageClasses: [{name: fast, provisioner: csi.other.com}]
namespaces:
  - name: dr
)";
constexpr const char* kMarkerPath = "/data/dr-marker.txt";

TEST(QemuCluster, RealGuestFreezesSnapshotsTellCleanFromDirtyAndItsBackupBootsInAnotherCluster) {
  TempDir scratch;
  auto loc = scratch.path() / "location";
  scratch.write("pw", "dr password", 0600);
  const std::string marker = "written through the agent before the backup, pid " + std::to_string(::getpid()) + "\n";
  std::string copied_sha;
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

    // Frozen through virt-freezer: the real agent reports "frozen" in the VMI.
    ProcessResult fr = kubectl("freeze");
    ASSERT_EQ(fr.exit_code, 0) << fr.err;
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

    // Disaster recovery, part 1: a file written in the guest through its agent, then a
    // backup with --copy-data: frozen at the cut, the copy's ext4 clean.
    {
      auto h = agent(tc, "prod/real", "guest-file-open", json::object{{"path", kMarkerPath}, {"mode", "w"}});
      ASSERT_TRUE(h) << h.error().describe();
      auto w = agent(tc, "prod/real", "guest-file-write", json::object{{"handle", *h}, {"buf-b64", base64_encode(marker)}});
      ASSERT_TRUE(w) << w.error().describe();
      ASSERT_TRUE(agent(tc, "prod/real", "guest-file-close", json::object{{"handle", *h}}));
      auto b = run_kvbackup(tc, {"backup", "create", "dr", "-n", "prod", "--location", loc.string(), "--copy-data", "--password-file",
                                 (scratch / "pw").string(), "-o", "json"});
      ASSERT_EQ(b.exit_code, 0) << b.out << b.err;
      auto rec = json::parse(b.out);
      const auto& vm = rec.at("vms").at(0);
      EXPECT_EQ(kube::str_at(vm, {"consistency"}), "FileSystemConsistent") << json::serialize(vm);
      const auto& vol = vm.at("volumes").at(0);
      copied_sha = std::string(kube::str_at(vol, {"copy", "sha256"}));
      EXPECT_EQ(copied_sha, tc.snapshot_sha256("prod", std::string(kube::str_at(vol, {"volumeSnapshot"}))));
      json::object dr_cut = guest_snapshot(tc, std::string(kube::str_at(vol, {"volumeSnapshot"})));
      EXPECT_EQ(kube::bool_at(dr_cut, {"frozenAtCut"}), true) << json::serialize(dr_cut);
      EXPECT_EQ(kube::bool_at(dr_cut, {"fsClean"}), true) << json::serialize(dr_cut);
    }

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
  ASSERT_FALSE(copied_sha.empty());

  // Disaster recovery, part 2: the first cluster is gone; a second one shares only the
  // location. The restored VM stays Halted (its claim is read by the oracle); --verify
  // boots a clone of it under QEMU, isolated, and the probe reads the file through the
  // real agent before AgentConnected is reported (the copy is deleted right after).
  std::mutex mu;
  std::map<std::string, std::string> read_back;  // "ns/vm" -> the file, or why not (outlives b)
  TestCluster b(kDrTarget);
  scratch.write("cdi-ca.pem", b.cluster().ca().cert_pem);
  b.cluster().qemu().set_agent_probe([&](const std::string& key, testcluster::guest::QemuGuest& g) {
    auto content = read_guest_file(g, kMarkerPath);
    std::lock_guard lock(mu);
    read_back[key] = content ? *content : "error: " + content.error().describe();
  });
  auto r = run_kvbackup(b, {"restore", "create", "r1", "--from-backup", "dr", "--location", loc.string(), "--namespace-mapping",
                            "prod:dr", "--data-source", "repository", "--password-file", (scratch / "pw").string(),
                            "--upload-proxy-ca", (scratch / "cdi-ca.pem").string(), "--run-strategy", "Halted", "--verify",
                            "--verify-timeout", "180s", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto rec = json::parse(r.out);
  const auto& vm = rec.at("vms").at(0);
  EXPECT_EQ(kube::str_at(vm, {"phase"}), "Completed");
  EXPECT_EQ(kube::str_at(vm, {"verification", "result"}), "Passed") << json::serialize(vm);
  double ready = vm.at("verification").at("secondsToAgentReady").to_number<double>();
  EXPECT_GT(ready, 0.0);
  std::printf("[measure] restored real guest: verification copy's agent ready %.1f s after the copy was created\n", ready);
  std::string verify_ns(kube::str_at(vm, {"verification", "namespace"}));
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(read_back.size(), 1u);
    EXPECT_EQ(read_back.begin()->first, verify_ns + "/real");
    EXPECT_EQ(read_back.begin()->second, marker);
  }
  // The restored claim: the copy's bytes, a clean ext4 holding the file.
  std::string claim(kube::str_at(vm.at("claims").at(0), {"claim"}));
  EXPECT_EQ(kube::str_at(vm.at("claims").at(0), {"dataSource"}), "repository");
  EXPECT_EQ(b.claim_sha256("dr", claim), copied_sha);
  std::filesystem::path restored;
  b.cluster().loop().run_sync([&] { restored = b.cluster().csi().volume_store().claim_path("dr", claim); });
  auto check = testcluster::guest::inspect_ext4(restored);
  ASSERT_TRUE(check) << check.error().describe();
  EXPECT_TRUE(check->clean()) << check->fsck_output;
  auto file = testcluster::guest::read_ext4_file(restored, "/dr-marker.txt");
  ASSERT_TRUE(file) << file.error().describe();
  EXPECT_EQ(*file, marker);
  // The verification copy is gone, its QEMU with it.
  EXPECT_FALSE(b.client()->get(kube::resources::kNamespaces, "", verify_ns));
  auto gone = kube::wait_for_object(b.client(), kVmi, verify_ns, "real", [](const json::object* o) { return o == nullptr; }, 5s);
  EXPECT_TRUE(gone);
  for (int i = 0; i < 300 && qemu_children() > 0; ++i) std::this_thread::sleep_for(50ms);  // polling QEMU's exit, bounded
  EXPECT_EQ(qemu_children(), 0) << "the verification copy's QEMU still runs";
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
