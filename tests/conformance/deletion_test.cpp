// Conformance of deletion with real clients (issue 15 item 9: pvc-protection, pv-protection,
// foreground cascading deletion): kubectl and the official Python client
// (tests/conformance/controllers_client.py). A missing client FAILS these
// tests. Upstream: the StorageObjectInUseProtection admission plugin and
// pkg/controller/volume/pvcprotection; apiserver registry store.go
// (foregroundDeletion) and the garbage collector's processDeletingDependentsItem.
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
snapshotClasses:
  - {name: fast, driver: csi.testcluster.kvbackup.io, cutLatency: 50ms, readyLatency: 50ms}
namespaces:
  - name: prod
    vms:
      - name: db
        volumes: [{name: data, type: persistentVolumeClaim, size: 1Gi}]
      - name: web
        volumes: [{name: root, type: dataVolume, size: 1Gi}]
)";

class Deletion : public RealClients {
 protected:
  Deletion() : RealClients(kScenario) {}
  std::string get(const std::string& what, const std::string& jsonpath) {
    auto r = kubectl({"get", what, "-n", "prod", "-o", "jsonpath=" + jsonpath});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }
  bool exists(const std::string& what) { return kubectl({"get", what, "-n", "prod"}).exit_code == 0; }
  void wait_for(const std::string& what, const std::string& condition) {
    auto r = kubectl({"wait", "-n", "prod", what, "--for=" + condition, "--timeout=40s"});
    ASSERT_EQ(r.exit_code, 0) << what << " never " << condition << ": " << r.err;
  }

};

TEST_F(Deletion, AClaimInUseByARunningPodStaysTerminatingUntilThePodIsGone) {
  wait_for("vm/db", "jsonpath={.status.printableStatus}=Running");
  EXPECT_THAT(get("pvc/db-data", "{.metadata.finalizers}"), HasSubstr("kubernetes.io/pvc-protection"));
  auto del = kubectl({"delete", "pvc/db-data", "-n", "prod", "--wait=false"});
  ASSERT_EQ(del.exit_code, 0) << del.err;
  EXPECT_NE(get("pvc/db-data", "{.metadata.deletionTimestamp}"), "") << "the launcher pod still uses it";
  auto table = kubectl({"get", "pvc/db-data", "-n", "prod"});
  EXPECT_THAT(table.out, HasSubstr("Terminating"));
  json::value typed = python({"pvc", tc_->kubeconfig().string(), "prod", "db-data"});
  EXPECT_EQ(kube::str_at(typed, {"phase"}), "Bound");
  EXPECT_THAT(json::serialize(typed), HasSubstr("kubernetes.io/pvc-protection"));
  EXPECT_FALSE(kube::str_at(typed, {"deletionTimestamp"}).empty()) << json::serialize(typed);

  // Stopping the VM ends its launcher pod; the claim then goes.
  auto stop = kubectl({"replace", "--raw", "/apis/subresources.kubevirt.io/v1/namespaces/prod/virtualmachines/db/stop", "-f", "-"}, "{}");
  ASSERT_EQ(stop.exit_code, 0) << stop.err;
  wait_for("pvc/db-data", "delete");
}

TEST_F(Deletion, AnUnusedClaimGoesAtOnce) {
  apply("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: spare, namespace: prod}\n"
        "spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n");
  EXPECT_THAT(get("pvc/spare", "{.metadata.finalizers}"), HasSubstr("kubernetes.io/pvc-protection"));
  auto del = kubectl({"delete", "pvc/spare", "-n", "prod"});  // kubectl waits for it to go
  ASSERT_EQ(del.exit_code, 0) << del.err;
  EXPECT_FALSE(exists("pvc/spare"));
}

TEST_F(Deletion, ABoundPersistentVolumeStaysTerminatingUntilItsClaimIsGone) {
  apply("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: held, namespace: prod}\n"
        "spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n");
  wait_for("pvc/held", "jsonpath={.status.phase}=Bound");
  std::string pv = get("pvc/held", "{.spec.volumeName}");
  ASSERT_FALSE(pv.empty());
  EXPECT_EQ(kubectl({"get", "pv/" + pv, "-o", "jsonpath={.metadata.finalizers}"}).out, R"(["kubernetes.io/pv-protection"])");
  // The Python client deletes it: it stays, Bound, with a deletionTimestamp.
  json::value typed = python({"pv", kc(), pv, "delete"});
  EXPECT_EQ(kube::str_at(typed, {"phase"}), "Bound") << json::serialize(typed);
  EXPECT_FALSE(kube::str_at(typed, {"deletionTimestamp"}).empty()) << json::serialize(typed);
  EXPECT_THAT(json::serialize(typed), HasSubstr("kubernetes.io/pv-protection"));
  EXPECT_EQ(kubectl({"get", "pv/" + pv, "-o", "jsonpath={.status.phase}"}).out, "Bound");
  // Its claim goes: the volume is Released and then goes too.
  auto del = kubectl({"delete", "pvc/held", "-n", "prod"});
  ASSERT_EQ(del.exit_code, 0) << del.err;
  auto gone = kubectl({"wait", "pv/" + pv, "--for=delete", "--timeout=20s"});
  EXPECT_EQ(gone.exit_code, 0) << gone.err;
  EXPECT_NE(kubectl({"get", "pv/" + pv}).exit_code, 0);

  // A volume no claim is bound to goes at once (kubectl waits for it).
  apply("apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: static-pv}\n"
        "spec: {capacity: {storage: 1Gi}, accessModes: [ReadWriteOnce], hostPath: {path: /tmp/x}}\n");
  EXPECT_EQ(kubectl({"get", "pv/static-pv", "-o", "jsonpath={.metadata.finalizers}"}).out, R"(["kubernetes.io/pv-protection"])");
  del = kubectl({"delete", "pv/static-pv", "--timeout=20s"});
  ASSERT_EQ(del.exit_code, 0) << del.err;
  EXPECT_NE(kubectl({"get", "pv/static-pv"}).exit_code, 0);
}

TEST_F(Deletion, ForegroundDeletionWaitsForBlockingDependentsOnly) {
  apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owner, namespace: prod}\ndata: {a: b}\n");
  std::string uid = get("cm/owner", "{.metadata.uid}");
  auto dependent = [&](const std::string& name, bool blocking) {
    return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n  namespace: prod\n"
           "  finalizers: [example.com/hold]\n  ownerReferences:\n  - {apiVersion: v1, kind: ConfigMap, name: owner, uid: " +
           uid + ", blockOwnerDeletion: " + (blocking ? "true" : "false") + "}\ndata: {a: b}\n";
  };
  apply(dependent("blocker", true));
  apply(dependent("bystander", false));

  auto del = kubectl({"delete", "cm/owner", "-n", "prod", "--cascade=foreground", "--wait=false"});
  ASSERT_EQ(del.exit_code, 0) << del.err;
  EXPECT_THAT(get("cm/owner", "{.metadata.finalizers}"), HasSubstr("foregroundDeletion"));
  EXPECT_NE(get("cm/owner", "{.metadata.deletionTimestamp}"), "");
  EXPECT_NE(get("cm/blocker", "{.metadata.deletionTimestamp}"), "") << "dependents are deleted first";
  EXPECT_NE(get("cm/bystander", "{.metadata.deletionTimestamp}"), "");

  // The bystander's finalizer does not hold the owner; the blocker's does.
  auto free_bystander = kubectl({"patch", "cm/bystander", "-n", "prod", "--type=merge", "-p", R"({"metadata":{"finalizers":null}})"});
  ASSERT_EQ(free_bystander.exit_code, 0) << free_bystander.err;
  EXPECT_TRUE(exists("cm/owner"));
  auto free_blocker = kubectl({"patch", "cm/blocker", "-n", "prod", "--type=merge", "-p", R"({"metadata":{"finalizers":null}})"});
  ASSERT_EQ(free_blocker.exit_code, 0) << free_blocker.err;
  wait_for("cm/owner", "delete");
}

TEST_F(Deletion, KubectlForegroundDeleteOfAVmReturnsOnceItsInstanceAndDataVolumesAreGone) {
  wait_for("vm/web", "jsonpath={.status.printableStatus}=Running");
  std::string pod = tc_->launcher_pod("prod", "web");
  auto del = kubectl({"delete", "vm/web", "-n", "prod", "--cascade=foreground", "--timeout=40s"});
  ASSERT_EQ(del.exit_code, 0) << del.err;
  EXPECT_FALSE(exists("vm/web"));
  EXPECT_FALSE(exists("vmi/web"));
  EXPECT_FALSE(exists("pod/" + pod));
  EXPECT_FALSE(exists("dv/web-root"));
  EXPECT_FALSE(exists("pvc/web-root"));
  EXPECT_TRUE(exists("vm/db")) << "nothing else goes";
}

}  // namespace
}  // namespace kvb::testing
