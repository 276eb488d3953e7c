// Conformance of the test cluster's controllers (KubeVirt 1.8, CDI,
// external-snapshotter; issue 15 items 3-7), proven with real clients: kubectl
// and the official Python client (/usr/bin/python3 with python3-kubernetes,
// tests/conformance/controllers_client.py). A missing client FAILS these tests.
// Every case asserts something the simulator got wrong before.
#include "common/subprocess.h"
#include "kube/object.h"
#include "tests/conformance/real_clients.h"
#include "tests/support/test_cluster.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kvb::testing {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;
using ::testing::Not;

const char* kScenario = R"(
kubevirtVersion: "1.8"
fsFreezePollInterval: 200ms
snapshotClasses:
  - {name: fast, driver: csi.testcluster.kvbackup.io, cutLatency: 50ms, readyLatency: 50ms}
  - {name: slow, driver: csi.testcluster.kvbackup.io, cutLatency: 15s, readyLatency: 50ms, default: false}
namespaces:
  - name: prod
    vms:
      - name: db
        volumes: [{name: data, type: persistentVolumeClaim, size: 1Gi}]
      - name: web
        volumes: [{name: root, type: dataVolume, size: 1Gi}]
)";

class Controllers : public RealClients {
 protected:
  Controllers() : RealClients(kScenario) {}

  std::string get(const std::string& what, const std::string& jsonpath, const std::string& ns = "prod") {
    std::vector<std::string> args{"get", what, "-o", "jsonpath=" + jsonpath};
    if (!ns.empty()) args.insert(args.end(), {"-n", ns});
    auto r = kubectl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }
  // kubectl wait on a jsonpath value (watches; no sleeping here).
  void wait_for(const std::string& what, const std::string& jsonpath, const std::string& value, const std::string& ns = "prod") {
    auto r = kubectl({"wait", "-n", ns, what, "--for=jsonpath=" + jsonpath + "=" + value, "--timeout=40s"});
    ASSERT_EQ(r.exit_code, 0) << what << " " << jsonpath << " never became " << value << ": " << r.err << "\nnow: "
                              << get(what, jsonpath, ns);
  }
  // Launcher pods as the typed Python client lists them.
  std::vector<json::object> pods(const std::string& selector) {
    std::vector<json::object> out;
    json::value v = python({"pods", kc(), "prod", selector});
    if (const auto* a = kube::array_at(v, {"pods"})) {
      for (const auto& p : *a) out.push_back(p.as_object());
    }
    return out;
  }
  std::string list_rv(const std::string& path) {
    return std::string(kube::str_at(python({"rv", kc(), path}), {"resourceVersion"}));
  }
  std::vector<json::object> watch(const std::string& path, const std::string& rv, const std::string& field,
                                   const std::string& value, int seconds = 15) {
    std::vector<json::object> out;
    json::value v = python({"watch", kc(), path, rv, field, value, std::to_string(seconds)});
    if (const auto* evs = kube::array_at(v, {"events"})) {
      for (const auto& e : *evs) out.push_back(e.at("object").as_object());
    }
    return out;
  }

};

std::string vm_yaml(const std::string& name, const std::string& volumes, const std::string& templates = {},
                    const std::string& strategy = "Always") {
  return "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: " + name + ", namespace: prod}\nspec:\n"
         "  runStrategy: " + strategy + "\n" + templates +
         "  template:\n    spec:\n      domain: {devices: {}, resources: {requests: {memory: 1Gi}}}\n      volumes:\n" + volumes;
}

// --- item 3: a VM waits for its volumes --------------------------------------

TEST_F(Controllers, VmWithDataVolumeOfUnknownStorageClassIsProvisioningWithoutVmiUntilTheClassExists) {
  apply(vm_yaml("late", "      - {name: root, dataVolume: {name: late-root}}\n",
                "  dataVolumeTemplates:\n  - metadata: {name: late-root}\n    spec:\n      source: {blank: {}}\n"
                "      storage: {storageClassName: later, resources: {requests: {storage: 1Gi}}}\n"));
  wait_for("vm/late", "{.status.printableStatus}", "Provisioning");
  EXPECT_EQ(get("dv/late-root", "{.status.phase}"), "Pending");
  EXPECT_EQ(get("dv/late-root", "{.status.conditions[?(@.type==\"Bound\")].status}"), "False");
  EXPECT_EQ(get("dv/late-root", "{.status.conditions[?(@.type==\"Ready\")].status}"), "False");
  auto vmi = kubectl({"get", "-n", "prod", "vmi/late"});
  EXPECT_NE(vmi.exit_code, 0) << "no VMI while the DataVolume is provisioning";
  EXPECT_THAT(vmi.err, HasSubstr("NotFound"));
  for (const auto& p : pods("kubevirt.io=virt-launcher")) {
    EXPECT_FALSE(kube::str_at(p, {"name"}).starts_with("virt-launcher-late-")) << "no launcher pod before the VMI";
  }

  apply("apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: later}\nprovisioner: csi.testcluster.kvbackup.io\n");
  wait_for("dv/late-root", "{.status.phase}", "Succeeded");
  EXPECT_EQ(get("dv/late-root", "{.status.progress}"), "100.0%");
  EXPECT_EQ(get("dv/late-root", "{.status.conditions[?(@.type==\"Ready\")].status}"), "True");
  EXPECT_EQ(get("dv/late-root", "{.status.conditions[?(@.type==\"Bound\")].reason}"), "Bound");
  EXPECT_EQ(get("dv/late-root", "{.status.conditions[?(@.type==\"Running\")].reason}"), "Completed");
  wait_for("vm/late", "{.status.printableStatus}", "Running");
  wait_for("vmi/late", "{.status.phase}", "Running");
}

TEST_F(Controllers, VmWithAMissingClaimGetsAVmiWithFailedPvcNotFoundAndNoPod) {
  apply(vm_yaml("ghost", "      - {name: data, persistentVolumeClaim: {claimName: nowhere}}\n"));
  wait_for("vmi/ghost", "{.status.conditions[?(@.type==\"Synchronized\")].reason}", "FailedPvcNotFound");
  EXPECT_EQ(get("vmi/ghost", "{.status.conditions[?(@.type==\"Synchronized\")].status}"), "False");
  EXPECT_THAT(get("vmi/ghost", "{.status.conditions[?(@.type==\"Synchronized\")].message}"),
              HasSubstr("PVC prod/nowhere does not exist, waiting for it to appear"));
  EXPECT_EQ(get("vmi/ghost", "{.status.phase}"), "Pending");
  wait_for("vm/ghost", "{.status.printableStatus}", "ErrorPvcNotFound");
  for (const auto& p : pods("kubevirt.io=virt-launcher")) {
    EXPECT_FALSE(kube::str_at(p, {"name"}).starts_with("virt-launcher-ghost-")) << "no launcher pod without the claim";
  }
  // The claim appears: the VMI starts.
  apply("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: nowhere, namespace: prod}\n"
        "spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n");
  wait_for("vmi/ghost", "{.status.phase}", "Running");
  wait_for("vm/ghost", "{.status.printableStatus}", "Running");
}

TEST_F(Controllers, VmOnAClaimStillRestoringFromAnUncutSnapshotIsNotScheduledUntilItIsBound) {
  apply("apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata: {name: slow-snap, namespace: prod}\n"
        "spec: {volumeSnapshotClassName: slow, source: {persistentVolumeClaimName: db-data}}\n");
  apply("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: restored, namespace: prod}\n"
        "spec:\n  accessModes: [ReadWriteOnce]\n  volumeMode: Block\n  resources: {requests: {storage: 1Gi}}\n"
        "  dataSource: {apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: slow-snap}\n");
  apply(vm_yaml("copy", "      - {name: data, persistentVolumeClaim: {claimName: restored}}\n"));
  wait_for("vmi/copy", "{.status.phase}", "Scheduling");
  EXPECT_EQ(get("vmi/copy", "{.status.conditions[?(@.type==\"PodScheduled\")].reason}"), "Unschedulable");
  json::object pod;
  for (const auto& p : pods("kubevirt.io=virt-launcher")) {
    if (kube::str_at(p, {"name"}).starts_with("virt-launcher-copy-")) pod = p;
  }
  ASSERT_FALSE(pod.empty()) << "the launcher pod exists";
  EXPECT_EQ(kube::str_at(pod, {"phase"}), "Pending");
  EXPECT_EQ(kube::str_at(pod, {"scheduled"}), "False");
  EXPECT_TRUE(pod.at("nodeName").is_null()) << "not scheduled to a node";
  EXPECT_EQ(get("vm/copy", "{.status.printableStatus}"), "ErrorUnschedulable");
  EXPECT_EQ(get("vm/copy", "{.status.ready}"), "false");
  // The cut happens, the claim binds, the pod is scheduled and runs.
  wait_for("pvc/restored", "{.status.phase}", "Bound");
  wait_for("vmi/copy", "{.status.phase}", "Running");
  wait_for("vm/copy", "{.status.printableStatus}", "Running");
}

TEST_F(Controllers, StandaloneVmiIsScheduled) {
  apply("apiVersion: kubevirt.io/v1\nkind: VirtualMachineInstance\nmetadata: {name: vmi-fedora, namespace: prod}\n"
        "spec:\n  domain: {devices: {disks: [{name: containerdisk, disk: {bus: virtio}}]}, resources: {requests: {memory: 1Gi}}}\n"
        "  volumes: [{name: containerdisk, containerDisk: {image: quay.io/kubevirt/fedora-with-test-tooling-container-disk:devel}}]\n");
  wait_for("vmi/vmi-fedora", "{.status.phase}", "Running");
  bool found = false;
  for (const auto& p : pods("kubevirt.io=virt-launcher")) {
    if (kube::str_at(p, {"name"}).starts_with("virt-launcher-vmi-fedora-")) {
      found = true;
      EXPECT_EQ(kube::str_at(p, {"phase"}), "Running");
    }
  }
  EXPECT_TRUE(found) << "a launcher pod for the standalone VMI";
}

// --- item 4: DataVolumes ------------------------------------------------------

TEST_F(Controllers, DataVolumeImportGoesThroughCdiPhasesSeenByAWatch) {
  std::string path = "/apis/cdi.kubevirt.io/v1beta1/namespaces/prod/datavolumes";
  std::string rv = list_rv(path);
  apply("apiVersion: cdi.kubevirt.io/v1beta1\nkind: DataVolume\nmetadata: {name: imported, namespace: prod}\n"
        "spec:\n  source: {http: {url: 'http://images.example/fedora.qcow2'}}\n  storage: {resources: {requests: {storage: 1Gi}}}\n");
  std::vector<std::string> phases;
  for (const auto& o : watch(path, rv, "status.phase", "Succeeded")) {
    if (kube::name_of(o) != "imported") continue;
    std::string p(kube::str_at(o, {"status", "phase"}));
    if (!p.empty() && (phases.empty() || phases.back() != p)) phases.push_back(p);
  }
  EXPECT_THAT(phases, ::testing::ElementsAre("ImportScheduled", "ImportInProgress", "Succeeded"));
  auto events = get("events", "{range .items[?(@.involvedObject.name==\"imported\")]}{.reason} {end}");
  EXPECT_THAT(events, HasSubstr("ImportScheduled"));
  EXPECT_THAT(events, HasSubstr("ImportSucceeded"));
  EXPECT_EQ(get("pvc/imported", "{.metadata.ownerReferences[0].kind}"), "DataVolume");
}

TEST_F(Controllers, DataVolumeAdoptsAnExistingClaimOnlyWhenPopulatedForIt) {
  apply("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: theirs, namespace: prod}\n"
        "spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n");
  apply("apiVersion: cdi.kubevirt.io/v1beta1\nkind: DataVolume\nmetadata: {name: theirs, namespace: prod}\n"
        "spec: {source: {blank: {}}, storage: {resources: {requests: {storage: 1Gi}}}}\n");
  wait_for("dv/theirs", "{.status.phase}", "Pending");
  EXPECT_EQ(get("pvc/theirs", "{.metadata.ownerReferences}"), "") << "not adopted";
  EXPECT_THAT(get("events", "{range .items[?(@.involvedObject.name==\"theirs\")]}{.reason} {end}"), HasSubstr("ErrResourceExists"));

  apply("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: ours\n  namespace: prod\n"
        "  annotations: {cdi.kubevirt.io/storage.populatedFor: ours}\n"
        "spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n");
  apply("apiVersion: cdi.kubevirt.io/v1beta1\nkind: DataVolume\nmetadata: {name: ours, namespace: prod}\n"
        "spec: {source: {blank: {}}, storage: {resources: {requests: {storage: 1Gi}}}}\n");
  wait_for("dv/ours", "{.status.phase}", "Succeeded");
  EXPECT_EQ(get("pvc/ours", "{.metadata.ownerReferences[0].name}"), "ours");
}

TEST_F(Controllers, PvcCloneDataVolumeCopiesTheSourceVolume) {
  apply("apiVersion: cdi.kubevirt.io/v1beta1\nkind: DataVolume\nmetadata: {name: db-clone, namespace: prod}\n"
        "spec: {source: {pvc: {namespace: prod, name: db-data}}, storage: {resources: {requests: {storage: 1Gi}}}}\n");
  wait_for("dv/db-clone", "{.status.phase}", "Succeeded");
  int64_t src = -1, clone = -1;
  json::object volumes = tc_->volumes();
  ASSERT_NE(kube::array_at(volumes, {"volumes"}), nullptr);
  for (const auto& v : *kube::array_at(volumes, {"volumes"})) {
    if (kube::str_at(v, {"pvc"}) == "db-data") src = kube::int_at(v, {"generation"}).value_or(-1);
    if (kube::str_at(v, {"pvc"}) == "db-clone") clone = kube::int_at(v, {"generation"}).value_or(-1);
  }
  EXPECT_GT(clone, 0) << "a clone of a used volume is not empty";
  EXPECT_LE(clone, src);
  EXPECT_THAT(get("events", "{range .items[?(@.involvedObject.name==\"db-clone\")]}{.reason} {end}"), HasSubstr("CloneSucceeded"));
}

// --- item 5: dataSourceRef ------------------------------------------------------

TEST_F(Controllers, ClaimWithOnlyDataSourceRefRestoresAndTheApiServerMirrorsBothFields) {
  apply("apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata: {name: s1, namespace: prod}\n"
        "spec: {source: {persistentVolumeClaimName: db-data}}\n");
  wait_for("volumesnapshot/s1", "{.status.readyToUse}", "true");
  apply("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: by-ref, namespace: prod}\n"
        "spec:\n  accessModes: [ReadWriteOnce]\n  volumeMode: Block\n  resources: {requests: {storage: 1Gi}}\n"
        "  dataSourceRef: {apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: s1}\n");
  apply("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: by-source, namespace: prod}\n"
        "spec:\n  accessModes: [ReadWriteOnce]\n  volumeMode: Block\n  resources: {requests: {storage: 1Gi}}\n"
        "  dataSource: {apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: s1}\n");
  auto by_ref = python({"pvc", kc(), "prod", "by-ref"});
  EXPECT_EQ(kube::str_at(by_ref, {"phase"}), "Bound");
  EXPECT_EQ(kube::str_at(by_ref, {"dataSource", "name"}), "s1") << "dataSourceRef mirrored into dataSource";
  auto by_source = python({"pvc", kc(), "prod", "by-source"});
  EXPECT_EQ(kube::str_at(by_source, {"dataSourceRef", "name"}), "s1") << "dataSource mirrored into dataSourceRef";
  EXPECT_EQ(kube::str_at(by_source, {"dataSourceRef", "kind"}), "VolumeSnapshot");
  bool restored = false;
  json::object volumes = tc_->volumes();
  ASSERT_NE(kube::array_at(volumes, {"volumes"}), nullptr);
  for (const auto& v : *kube::array_at(volumes, {"volumes"})) {
    if (kube::str_at(v, {"pvc"}) == "by-ref") restored = kube::str_at(v, {"restoredFromSnapshot"}) == "s1";
  }
  EXPECT_TRUE(restored) << "the dataSourceRef claim holds the snapshot's content, not an empty volume";
  auto mismatch = kubectl({"apply", "-f", "-"},
                          "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: mixed, namespace: prod}\n"
                          "spec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n"
                          "  dataSource: {apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: s1}\n"
                          "  dataSourceRef: {apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: other}\n");
  EXPECT_NE(mismatch.exit_code, 0);
  EXPECT_THAT(mismatch.err, HasSubstr("must match dataSourceRef"));
}

// --- item 6: VolumeSnapshots ----------------------------------------------------

TEST_F(Controllers, VolumeSnapshotSourceRulesAreEnforcedWithUpstreamMessages) {
  auto both = kubectl({"apply", "-f", "-"},
                      "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata: {name: both, namespace: prod}\n"
                      "spec: {source: {persistentVolumeClaimName: db-data, volumeSnapshotContentName: x}}\n");
  EXPECT_NE(both.exit_code, 0);
  EXPECT_THAT(both.err, HasSubstr("exactly one of volumeSnapshotContentName and persistentVolumeClaimName must be set"));
  auto neither = kubectl({"create", "-f", "-"},
                         "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata: {name: neither, namespace: prod}\n"
                         "spec: {source: {}}\n");
  EXPECT_NE(neither.exit_code, 0);
  EXPECT_THAT(neither.err, HasSubstr("exactly one of"));
  apply("apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata: {name: fixed, namespace: prod}\n"
        "spec: {source: {persistentVolumeClaimName: db-data}}\n");
  auto moved = kubectl({"patch", "-n", "prod", "volumesnapshot/fixed", "--type=merge", "-p",
                        R"({"spec":{"source":{"persistentVolumeClaimName":"web-root"}}})"});
  EXPECT_NE(moved.exit_code, 0);
  EXPECT_THAT(moved.err, HasSubstr("persistentVolumeClaimName is immutable"));
  EXPECT_EQ(get("volumesnapshot/fixed", "{.spec.source.persistentVolumeClaimName}"), "db-data");
}

TEST_F(Controllers, SnapshotErrorIsRetriedAndClearedWhenTheFaultEnds) {
  tc_->add_fault(R"({"type":"snapshot-fail","pvc":"db-data","count":1,"message":"array busy"})");
  std::string path = "/apis/snapshot.storage.k8s.io/v1/namespaces/prod/volumesnapshots";
  std::string rv = list_rv(path);
  apply("apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata: {name: retried, namespace: prod}\n"
        "spec: {source: {persistentVolumeClaimName: db-data}}\n");
  bool saw_error = false;
  json::object last;
  for (const auto& o : watch(path, rv, "status.readyToUse", "True")) {
    if (kube::name_of(o) != "retried") continue;
    if (kube::str_at(o, {"status", "error", "message"}) == "array busy") saw_error = true;
    last = o;
  }
  EXPECT_TRUE(saw_error) << "the failed cut shows as status.error";
  EXPECT_TRUE(kube::bool_at(last, {"status", "readyToUse"}).value_or(false)) << "the retry succeeded";
  EXPECT_EQ(kube::value_at(last, {"status", "error"}), nullptr) << "and cleared the error";
}

TEST_F(Controllers, SnapshotsCarryFinalizersAndContentsTheSourceVolumeMode) {
  apply("apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata: {name: s2, namespace: prod}\n"
        "spec: {source: {persistentVolumeClaimName: db-data}}\n");
  wait_for("volumesnapshot/s2", "{.status.readyToUse}", "true");
  auto finalizers = get("volumesnapshot/s2", "{.metadata.finalizers}");
  EXPECT_THAT(finalizers, HasSubstr("snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection"));
  EXPECT_THAT(finalizers, HasSubstr("snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"));
  std::string content = get("volumesnapshot/s2", "{.status.boundVolumeSnapshotContentName}");
  EXPECT_EQ(get("volumesnapshotcontent/" + content, "{.spec.sourceVolumeMode}", ""), "Block");
  EXPECT_THAT(get("volumesnapshotcontent/" + content, "{.metadata.finalizers}", ""),
              HasSubstr("snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"));
  // A Block volume's snapshot does not restore into a Filesystem claim.
  apply("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: fs, namespace: prod}\n"
        "spec:\n  accessModes: [ReadWriteOnce]\n  volumeMode: Filesystem\n  resources: {requests: {storage: 1Gi}}\n"
        "  dataSource: {apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: s2}\n");
  EXPECT_EQ(get("pvc/fs", "{.status.phase}"), "Pending");
  EXPECT_THAT(get("events", "{range .items[?(@.involvedObject.name==\"fs\")]}{.message}{\"\\n\"}{end}"),
              HasSubstr("modifies the mode of the source volume but does not have permission to do so"));
  // Deleting it is held while that claim restores from it, then goes once it is deleted.
  auto del = kubectl({"delete", "-n", "prod", "volumesnapshot/s2", "--wait=false"});
  ASSERT_EQ(del.exit_code, 0) << del.err;
  EXPECT_NE(get("volumesnapshot/s2", "{.metadata.deletionTimestamp}"), "") << "held by volumesnapshot-as-source-protection";
  EXPECT_THAT(get("events", "{range .items[?(@.involvedObject.name==\"s2\")]}{.reason} {end}"), HasSubstr("SnapshotDeletePending"));
  ASSERT_EQ(kubectl({"delete", "-n", "prod", "pvc/fs"}).exit_code, 0);
  auto gone = kubectl({"wait", "-n", "prod", "volumesnapshot/s2", "--for=delete", "--timeout=40s"});
  EXPECT_EQ(gone.exit_code, 0) << gone.err;
  EXPECT_NE(kubectl({"get", "volumesnapshotcontent/" + content}).exit_code, 0) << "its content went with it";
}

TEST_F(Controllers, SnapshotDeletedMidCutStaysUntilTheCutIsDone) {
  apply("apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata: {name: mid, namespace: prod}\n"
        "spec: {volumeSnapshotClassName: slow, source: {persistentVolumeClaimName: db-data}}\n");
  std::string content = get("volumesnapshot/mid", "{.status.boundVolumeSnapshotContentName}");
  ASSERT_NE(content, "");
  auto del = kubectl({"delete", "-n", "prod", "volumesnapshot/mid", "--wait=false"});
  ASSERT_EQ(del.exit_code, 0) << del.err;
  EXPECT_NE(get("volumesnapshot/mid", "{.metadata.deletionTimestamp}"), "") << "still there, being deleted";
  EXPECT_NE(get("volumesnapshotcontent/" + content, "{.metadata.deletionTimestamp}", ""), "");
  EXPECT_EQ(get("volumesnapshotcontent/" + content, "{.status.snapshotHandle}", ""), "") << "not cut yet";
  auto gone = kubectl({"wait", "-n", "prod", "volumesnapshot/mid", "--for=delete", "--timeout=40s"});
  EXPECT_EQ(gone.exit_code, 0) << gone.err;
  EXPECT_EQ(tc_->events("SnapshotCut").size(), 1u) << "the cut in flight finished before the snapshot went";
}

// --- item 7: owner references, launcher pod deletion ------------------------------

TEST_F(Controllers, DeleteVmWithCascadeOrphanKeepsVmiAndPod) {
  std::string pod = tc_->launcher_pod("prod", "db");
  auto del = kubectl({"delete", "-n", "prod", "vm/db", "--cascade=orphan"});
  ASSERT_EQ(del.exit_code, 0) << del.err;
  EXPECT_EQ(get("vmi/db", "{.status.phase}"), "Running");
  EXPECT_EQ(get("vmi/db", "{.metadata.ownerReferences}"), "") << "orphaned: owner reference removed";
  EXPECT_EQ(get("pod/" + pod, "{.status.phase}"), "Running");
  // Background (kubectl's default) takes the dependents with it.
  std::string web_pod = tc_->launcher_pod("prod", "web");
  ASSERT_EQ(kubectl({"delete", "-n", "prod", "vm/web"}).exit_code, 0);
  EXPECT_NE(kubectl({"get", "-n", "prod", "vmi/web"}).exit_code, 0);
  EXPECT_NE(kubectl({"get", "-n", "prod", "pod/" + web_pod}).exit_code, 0);
}

TEST_F(Controllers, DeletingTheLauncherPodFailsTheVmiAndTheVmStartsANewOne) {
  std::string uid = get("vmi/db", "{.metadata.uid}");
  std::string pod = tc_->launcher_pod("prod", "db");
  std::string path = "/apis/kubevirt.io/v1/namespaces/prod/virtualmachineinstances";
  std::string rv = list_rv(path);
  ASSERT_EQ(kubectl({"delete", "-n", "prod", "pod/" + pod}).exit_code, 0);
  bool failed = false;
  for (const auto& o : watch(path, rv, "status.phase", "Failed")) {
    if (kube::uid_of(o) == uid && kube::str_at(o, {"status", "phase"}) == "Failed") failed = true;
  }
  EXPECT_TRUE(failed) << "the VMI of a deleted launcher pod fails";
  // runStrategy Always: a new VMI, with a new launcher pod.
  auto r = kubectl({"wait", "-n", "prod", "vmi/db", "--for=jsonpath={.status.phase}=Running", "--timeout=40s"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(get("vmi/db", "{.metadata.uid}"), uid);
  EXPECT_NE(tc_->launcher_pod("prod", "db"), pod);
  EXPECT_EQ(kube::int_at(python({"freeze", kc(), "prod", "db"}), {"status"}).value_or(0), 200);
  ASSERT_EQ(tc_->exec("prod", tc_->launcher_pod("prod", "db"), "compute",
                      {"/usr/bin/virt-freezer", "--unfreeze", "--name", "db", "--namespace", "prod"}).exit_code, 0);
}

TEST_F(Controllers, RunStrategyOnceLeavesAFailedVmiFailed) {
  ASSERT_EQ(kubectl({"patch", "-n", "prod", "vm/db", "--type=merge", "-p", R"({"spec":{"runStrategy":"Once"}})"}).exit_code, 0);
  std::string uid = get("vmi/db", "{.metadata.uid}");
  ASSERT_EQ(kubectl({"delete", "-n", "prod", "pod/" + tc_->launcher_pod("prod", "db")}).exit_code, 0);
  wait_for("vmi/db", "{.status.phase}", "Failed");
  EXPECT_EQ(get("vmi/db", "{.status.conditions[?(@.type==\"Ready\")].status}"), "False");
  EXPECT_EQ(get("vmi/db", "{.metadata.uid}"), uid);
  wait_for("vm/db", "{.status.printableStatus}", "Stopped");
  EXPECT_EQ(kube::int_at(python({"freeze", kc(), "prod", "db"}), {"status"}).value_or(0), 409);
}

}  // namespace
}  // namespace kvb::testing
