// Conformance of CustomResourceDefinitions (issue 15 item 11) with real
// clients: kubectl and the official Python client
// (tests/conformance/controllers_client.py). A missing client FAILS these
// tests. Upstream: apiextensions-apiserver (establishing and naming
// controllers, crd_finalizer.go, the customresource REST storage).
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
snapshotClasses:
  - {name: fast, driver: csi.testcluster.kvbackup.io, cutLatency: 50ms, readyLatency: 50ms}
namespaces:
  - name: prod
    vms:
      - name: db
        volumes: [{name: data, type: persistentVolumeClaim, size: 1Gi}]
)";

const char* kCrd = R"(apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
)";

std::string widget(const std::string& name, int size) {
  return "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: " + name + ", namespace: prod}\nspec: {size: " +
         std::to_string(size) + "}\n";
}

class Crds : public RealClients {
 protected:
  Crds() : RealClients(kScenario) {}
};

TEST_F(Crds, ARegisteredCrdIsServedWithDiscoveryStatusAndWatchAndDeletingItStopsServing) {
  EXPECT_NE(kubectl({"get", "widgets", "-n", "prod"}).exit_code, 0) << "not served before the CRD";
  apply(kCrd);
  auto est = kubectl({"wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=20s"});
  ASSERT_EQ(est.exit_code, 0) << est.err;
  auto names = kubectl({"get", "crd/widgets.example.com", "-o", "jsonpath={.status.acceptedNames.kind} {.status.storedVersions}"});
  EXPECT_EQ(names.out, "Widget [\"v1\"]");
  auto api = kubectl({"api-resources", "--api-group=example.com", "-o", "name"});
  EXPECT_THAT(api.out, HasSubstr("widgets.example.com"));

  apply(widget("w1", 3));
  auto list = kubectl({"get", "widgets", "-n", "prod", "-o", "name"});
  EXPECT_EQ(list.out, "widget.example.com/w1\n") << list.err;
  auto by_short = kubectl({"get", "wd", "w1", "-n", "prod", "-o", "jsonpath={.spec.size}"});
  EXPECT_EQ(by_short.out, "3") << by_short.err;

  // The status subresource: written through /status only.
  auto st = kubectl({"patch", "widget/w1", "-n", "prod", "--subresource=status", "--type=merge", "-p", R"({"status":{"ready":true}})"});
  ASSERT_EQ(st.exit_code, 0) << st.err;
  auto main = kubectl({"patch", "widget/w1", "-n", "prod", "--type=merge", "-p", R"({"status":{"ready":false},"spec":{"size":4}})"});
  ASSERT_EQ(main.exit_code, 0) << main.err;
  EXPECT_EQ(kubectl({"get", "widget/w1", "-n", "prod", "-o", "jsonpath={.status.ready} {.spec.size}"}).out, "true 4");

  // A watch (the Python client) sees a new one.
  std::string path = "/apis/example.com/v1/namespaces/prod/widgets";
  std::string rv(kube::str_at(python({"rv", tc_->kubeconfig().string(), path}), {"resourceVersion"}));
  apply(widget("w2", 5));
  json::value w = python({"watch", tc_->kubeconfig().string(), path, rv, "metadata.name", "w2", "15"});
  const auto* evs = kube::array_at(w, {"events"});
  ASSERT_TRUE(evs && !evs->empty()) << json::serialize(w);
  EXPECT_EQ(kube::str_at(evs->back(), {"type"}), "ADDED");

  // Deleting the CRD deletes its instances, then it stops being served.
  auto del = kubectl({"delete", "crd/widgets.example.com", "--timeout=30s"});
  ASSERT_EQ(del.exit_code, 0) << del.err;
  auto gone = kubectl({"get", "widgets", "-n", "prod"});
  EXPECT_NE(gone.exit_code, 0);
  // kubectl's cached discovery still names it, so it asks and gets the 404 (or,
  // with fresh discovery, it knows no such type).
  EXPECT_THAT(gone.err, ::testing::AnyOf(HasSubstr("the server could not find the requested resource"),
                                         HasSubstr("the server doesn't have a resource type \"widgets\"")));
  apply(kCrd);
  est = kubectl({"wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=20s"});
  ASSERT_EQ(est.exit_code, 0) << est.err;
  auto empty = kubectl({"get", "widgets", "-n", "prod", "-o", "name"});
  EXPECT_EQ(empty.exit_code, 0) << empty.err;
  EXPECT_EQ(empty.out, "") << "the instances went with the first CRD";
}

// KubeVirt's own CRD applied to the test cluster (as an install manifest
// would) changes nothing: the simulator keeps serving its VMs, and deleting
// the CRD deletes none of them.
TEST_F(Crds, ACrdForABuiltInKindLeavesItsObjectsAlone) {
  apply(R"(apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: virtualmachines.kubevirt.io}
spec:
  group: kubevirt.io
  scope: Namespaced
  names: {plural: virtualmachines, singular: virtualmachine, kind: VirtualMachine, shortNames: [vm, vms]}
  versions:
  - {name: v1, served: true, storage: true, subresources: {status: {}},
     schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
)");
  auto est = kubectl({"wait", "--for=condition=Established", "crd/virtualmachines.kubevirt.io", "--timeout=20s"});
  ASSERT_EQ(est.exit_code, 0) << est.err;
  auto del = kubectl({"delete", "crd/virtualmachines.kubevirt.io", "--timeout=30s"});
  ASSERT_EQ(del.exit_code, 0) << del.err;
  auto vm = kubectl({"get", "vm", "db", "-n", "prod", "-o", "name"});
  EXPECT_EQ(vm.exit_code, 0) << vm.err;
  EXPECT_EQ(vm.out, "virtualmachine.kubevirt.io/db\n");
}

}  // namespace
}  // namespace kvb::testing
