// Conformance of server-side apply (issue 15 item 11) with real clients:
// `kubectl apply --server-side` and the official Python client's dynamic
// client (tests/conformance/controllers_client.py `apply`). A missing client
// FAILS these tests. Upstream: apiserver endpoints/handlers/patch.go and
// fieldmanager, sigs.k8s.io/structured-merge-diff.
#include "kube/object.h"
#include "tests/conformance/real_clients.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kvb::testing {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;

const char* kScenario = R"(
namespaces:
  - name: prod
    vms:
      - name: db
        volumes: [{name: data, type: persistentVolumeClaim, size: 1Gi}]
)";

class ServerSideApply : public RealClients {
 protected:
  ServerSideApply() : RealClients(kScenario) {}

  json::value get(const std::string& what) {
    auto r = kubectl({"get", what, "-n", "prod", "-o", "json", "--show-managed-fields"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    boost::system::error_code ec;
    json::value v = json::parse(r.out, ec);
    return ec ? json::value() : v;
  }
  // The managedFields entry of `manager` (null when it has none).
  static json::value entry(const json::value& obj, const std::string& manager) {
    if (const auto* mf = kube::array_at(obj, {"metadata", "managedFields"})) {
      for (const auto& e : *mf) {
        if (kube::str_at(e, {"manager"}) == manager) return e;
      }
    }
    return nullptr;
  }
  json::value py_apply(const std::string& manager, bool force, const json::object& body, bool dry = false) {
    return python({"apply", kc(), manager, force ? "true" : "false", dry ? "true" : "false", json::serialize(body)});
  }
};

TEST_F(ServerSideApply, KubectlCreatesThenMergesAndRecordsManagedFieldsRemovingWhatItNoLongerApplies) {
  const char* v1 = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: prod, labels: {app: x}}\ndata: {a: '1', b: '2'}\n";
  auto r = kubectl({"apply", "--server-side", "-f", "-"}, v1);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("configmap/cfg serverside-applied"));
  json::value cm = get("configmap/cfg");
  json::value e = entry(cm, "kubectl");
  ASSERT_FALSE(e.is_null()) << json::serialize(cm);
  EXPECT_EQ(kube::str_at(e, {"operation"}), "Apply");
  EXPECT_EQ(kube::str_at(e, {"apiVersion"}), "v1");
  EXPECT_EQ(kube::str_at(e, {"fieldsType"}), "FieldsV1");
  EXPECT_FALSE(kube::str_at(e, {"time"}).empty());
  EXPECT_EQ(json::serialize(*kube::value_at(e, {"fieldsV1"})),
            R"({"f:data":{"f:a":{},"f:b":{}},"f:metadata":{"f:labels":{"f:app":{}}}})");

  // Another manager edits a field of its own; the next apply drops `b` (no longer applied) and keeps theirs.
  ASSERT_EQ(kubectl({"patch", "configmap/cfg", "-n", "prod", "--type=merge", "-p", R"({"data":{"c":"3"}})"}).exit_code, 0);
  const char* v2 = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: prod, labels: {app: x}}\ndata: {a: '10'}\n";
  r = kubectl({"apply", "--server-side", "-f", "-"}, v2);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  cm = get("configmap/cfg");
  EXPECT_EQ(json::serialize(*kube::value_at(cm, {"data"})), R"({"a":"10","c":"3"})");
  json::value patcher = entry(cm, "kubectl-patch");
  ASSERT_FALSE(patcher.is_null()) << json::serialize(cm);
  EXPECT_EQ(kube::str_at(patcher, {"operation"}), "Update");
  EXPECT_EQ(json::serialize(*kube::value_at(patcher, {"fieldsV1"})), R"({"f:data":{"f:c":{}}})");

  // The Python client sees the same ownership through its dynamic client.
  json::value p = py_apply("py", false, json::object{{"apiVersion", "v1"}, {"kind", "ConfigMap"},
                                                     {"metadata", {{"name", "cfg"}, {"namespace", "prod"}}},
                                                     {"data", {{"d", "4"}}}});
  ASSERT_EQ(kube::int_at(p, {"status"}).value_or(-1), 0) << json::serialize(p);
  EXPECT_EQ(kube::str_at(p, {"object", "data", "d"}), "4");
  EXPECT_EQ(kube::str_at(p, {"object", "data", "a"}), "10");
}

TEST_F(ServerSideApply, AChangeToAFieldAnotherManagerOwnsIsAConflictUnlessForced) {
  const char* cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owned, namespace: prod}\ndata: {key: one}\n";
  apply(cm);  // client-side: manager kubectl-client-side-apply
  const char* mine = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owned, namespace: prod}\ndata: {key: two}\n";
  auto r = kubectl({"apply", "--server-side", "-f", "-"}, mine);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr(R"(Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using v1: .data.key)"));
  EXPECT_EQ(kubectl({"get", "cm/owned", "-n", "prod", "-o", "jsonpath={.data.key}"}).out, "one");

  // The same value is no conflict: both own it.
  json::object same{{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", "owned"}, {"namespace", "prod"}}},
                    {"data", {{"key", "one"}}}};
  EXPECT_EQ(kube::int_at(py_apply("py", false, same), {"status"}).value_or(-1), 0);

  // The Python client gets the 409 Status with one FieldManagerConflict cause.
  json::object other = same;
  other["data"] = json::object{{"key", "three"}};
  json::value p = py_apply("py2", false, other);
  ASSERT_EQ(kube::int_at(p, {"status"}).value_or(-1), 409) << json::serialize(p);
  EXPECT_EQ(kube::str_at(p, {"body", "reason"}), "Conflict");
  EXPECT_THAT(std::string(kube::str_at(p, {"body", "message"})), HasSubstr("Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using v1:\n- .data.key\nconflicts with \"py\":\n- .data.key"));
  const auto* causes = kube::array_at(p, {"body", "details", "causes"});
  ASSERT_TRUE(causes && causes->size() == 2) << json::serialize(p);
  EXPECT_EQ(kube::str_at((*causes)[0], {"reason"}), "FieldManagerConflict");
  EXPECT_EQ(kube::str_at((*causes)[0], {"field"}), ".data.key");

  r = kubectl({"apply", "--server-side", "--force-conflicts", "-f", "-"}, mine);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json::value now = get("configmap/owned");
  EXPECT_EQ(kube::str_at(now, {"data", "key"}), "two");
  json::value csa = entry(now, "kubectl-client-side-apply");
  EXPECT_EQ(kube::value_at(csa, {"fieldsV1", "f:data", "f:key"}), nullptr) << json::serialize(now);
  EXPECT_TRUE(entry(now, "py").is_null()) << "py lost its only field";
}

TEST_F(ServerSideApply, PodContainersMergeByNameAndConflictsNameTheListItem) {
  json::object pod{{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", {{"name", "web"}, {"namespace", "prod"}}},
                   {"spec", {{"containers", json::array{json::object{{"name", "c1"}, {"image", "busybox:1"}}}}}}};
  ASSERT_EQ(kube::int_at(py_apply("one", false, pod), {"status"}).value_or(-1), 0);
  // A second manager adds env to the same container: merged into it by name, no conflict.
  json::object env = pod;
  env["spec"] = json::object{{"containers", json::array{json::object{{"name", "c1"}, {"env", json::array{json::object{{"name", "X"}, {"value", "1"}}}}}}}};
  json::value p = py_apply("two", false, env);
  ASSERT_EQ(kube::int_at(p, {"status"}).value_or(-1), 0) << json::serialize(p);
  json::value got = get("pod/web");
  const auto* cs = kube::array_at(got, {"spec", "containers"});
  ASSERT_TRUE(cs && cs->size() == 1) << json::serialize(got);
  EXPECT_EQ(kube::str_at((*cs)[0], {"image"}), "busybox:1");
  EXPECT_EQ(json::serialize(*kube::value_at((*cs)[0], {"env"})), R"([{"name":"X","value":"1"}])");
  json::value two = entry(got, "two");
  EXPECT_EQ(json::serialize(*kube::value_at(two, {"fieldsV1"})),
            R"({"f:spec":{"f:containers":{"k:{\"name\":\"c1\"}":{".":{},"f:env":{"k:{\"name\":\"X\"}":{".":{},"f:name":{},"f:value":{}}},"f:name":{}}}}})");

  // kubectl as a third manager changing the image: the conflict names the item by its key.
  const char* img = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: prod}\nspec:\n  containers: [{name: c1, image: busybox:2}]\n";
  auto r = kubectl({"apply", "--server-side", "--field-manager=three", "-f", "-"}, img);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr(R"(Apply failed with 1 conflict: conflict with "one": .spec.containers[name="c1"].image)"));
  r = kubectl({"apply", "--server-side", "--field-manager=three", "--force-conflicts", "-f", "-"}, img);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(kubectl({"get", "pod/web", "-n", "prod", "-o", "jsonpath={.spec.containers[0].image} {.spec.containers[0].env[0].name}"}).out,
            "busybox:2 X");
}

TEST_F(ServerSideApply, WorksForClaimsVirtualMachinesAndCustomResourcesWithDryRunAndARequiredManager) {
  const char* pvc = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: extra, namespace: prod}\n"
                    "spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n";
  auto r = kubectl({"apply", "--server-side", "--dry-run=server", "-f", "-"}, pvc);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(kubectl({"get", "pvc/extra", "-n", "prod"}).exit_code, 0) << "a dry run creates nothing";
  r = kubectl({"apply", "--server-side", "-f", "-"}, pvc);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(kubectl({"get", "pvc/extra", "-n", "prod", "-o", "jsonpath={.spec.resources.requests.storage}"}).out, "1Gi");

  // The scenario's VM was written before anyone applied: its fields belong to "before-first-apply".
  const char* vm = "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: db, namespace: prod}\nspec: {runStrategy: Halted}\n";
  r = kubectl({"apply", "--server-side", "-f", "-"}, vm);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr(R"(conflict with "before-first-apply" using kubevirt.io/v1: .spec.runStrategy)"));
  r = kubectl({"apply", "--server-side", "--force-conflicts", "-f", "-"}, vm);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(kubectl({"get", "vm/db", "-n", "prod", "-o", "jsonpath={.spec.runStrategy}"}).out, "Halted");
  // A new VM through the Python client.
  json::object vm2{{"apiVersion", "kubevirt.io/v1"}, {"kind", "VirtualMachine"}, {"metadata", {{"name", "web"}, {"namespace", "prod"}}},
                   {"spec", {{"runStrategy", "Halted"},
                             {"template", {{"spec", {{"domain", {{"devices", json::object{}}}}}}}}}}};
  json::value p = py_apply("py", false, vm2);
  ASSERT_EQ(kube::int_at(p, {"status"}).value_or(-1), 0) << json::serialize(p);
  EXPECT_EQ(kubectl({"get", "vm/web", "-n", "prod", "-o", "jsonpath={.metadata.managedFields[0].manager}"}).out, "py");

  // A custom resource.
  apply("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\n"
        "spec:\n  group: example.com\n  scope: Namespaced\n  names: {plural: widgets, singular: widget, kind: Widget}\n"
        "  versions:\n  - name: v1\n    served: true\n    storage: true\n"
        "    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}\n");
  ASSERT_EQ(kubectl({"wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=20s"}).exit_code, 0);
  const char* w = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: prod}\nspec: {size: 3, tags: [a, b]}\n";
  r = kubectl({"apply", "--server-side", "-f", "-"}, w);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json::object w2{{"apiVersion", "example.com/v1"}, {"kind", "Widget"}, {"metadata", {{"name", "w1"}, {"namespace", "prod"}}},
                  {"spec", {{"size", 4}}}};
  p = py_apply("py", false, w2);
  ASSERT_EQ(kube::int_at(p, {"status"}).value_or(-1), 409) << json::serialize(p);
  p = py_apply("py", true, w2);
  ASSERT_EQ(kube::int_at(p, {"status"}).value_or(-1), 0) << json::serialize(p);
  EXPECT_EQ(kubectl({"get", "widget/w1", "-n", "prod", "-o", "jsonpath={.spec.size} {.spec.tags}"}).out, R"(4 ["a","b"])");

  // Without a fieldManager the apply is refused as the API server's PatchOptions validation does.
  p = py_apply("", false, w2);
  ASSERT_EQ(kube::int_at(p, {"status"}).value_or(-1), 422) << json::serialize(p);
  EXPECT_EQ(kube::str_at(p, {"body", "message"}),
            R"(PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch)");
}

}  // namespace
}  // namespace kvb::testing
