// Conformance of the OpenAPI v3 schemas of the built-in kinds and of field
// validation at any depth (issue 15 items 8 and 11) with real clients:
// `kubectl explain`, kubectl's --validate and the official Python client
// (tests/conformance/controllers_client.py `raw`). A missing client FAILS
// these tests. Upstream: kube-openapi's v3 documents; apiserver
// handlers/rest.go field validation (Strict, Warn, Ignore) and
// fieldmanager structuredmerge.go.
#include "kube/object.h"
#include "tests/conformance/real_clients.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kvb::testing {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;
using ::testing::Not;

const char* kScenario = R"(
namespaces:
  - name: prod
    vms:
      - name: db
        volumes: [{name: data, type: persistentVolumeClaim, size: 1Gi}]
)";

class OpenApi : public RealClients {
 protected:
  OpenApi() : RealClients(kScenario) {}
  json::value raw(const std::string& method, const std::string& path, const std::string& body = {}) {
    return python({"raw", kc(), method, path, body});
  }
};

TEST_F(OpenApi, KubectlExplainsBuiltInAndKubeVirtKindsFromTheV3Documents) {
  auto r = kubectl({"explain", "pod.spec.containers"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("KIND:       Pod"));
  EXPECT_THAT(r.out, HasSubstr("FIELD: containers <[]Container>"));
  EXPECT_THAT(r.out, HasSubstr("image\t<string>"));
  EXPECT_THAT(r.out, HasSubstr("volumeMounts\t<[]VolumeMount>"));

  r = kubectl({"explain", "pvc.spec"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("FIELD: spec <PersistentVolumeClaimSpec>"));
  EXPECT_THAT(r.out, HasSubstr("storageClassName\t<string>"));
  EXPECT_THAT(r.out, HasSubstr("dataSourceRef\t<TypedObjectReference>"));

  r = kubectl({"explain", "vm.spec.runStrategy"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("GROUP:      kubevirt.io"));
  EXPECT_THAT(r.out, HasSubstr("FIELD: runStrategy <string>"));
  EXPECT_THAT(r.out, HasSubstr("RerunOnFailure"));

  // The Python client reads the same document: schemas named as upstream, with their group-version-kind.
  json::value doc = raw("GET", "/openapi/v3/api/v1");
  ASSERT_EQ(kube::int_at(doc, {"status"}).value_or(0), 200) << json::serialize(doc);
  const auto* pod = kube::object_at(doc, {"body", "components", "schemas", "io.k8s.api.core.v1.Pod"});
  ASSERT_NE(pod, nullptr);
  const auto* gvk = kube::array_at(*pod, {"x-kubernetes-group-version-kind"});
  ASSERT_TRUE(gvk && gvk->size() == 1);
  EXPECT_EQ(kube::str_at((*gvk)[0], {"kind"}), "Pod");
  EXPECT_FALSE(kube::str_at(json::value(*pod), {"description"}).empty());
  EXPECT_NE(kube::object_at(doc, {"body", "components", "schemas", "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}), nullptr);
  const auto* containers = kube::object_at(doc, {"body", "components", "schemas", "io.k8s.api.core.v1.PodSpec", "properties", "containers"});
  ASSERT_NE(containers, nullptr);
  EXPECT_EQ(kube::str_at(json::value(*containers), {"x-kubernetes-patch-merge-key"}), "name");
}

const char* kBadPod = "apiVersion: v1\nkind: Pod\nmetadata: {name: bad, namespace: prod}\n"
                      "spec:\n  containers:\n  - {name: c, image: busybox, imagee: typo, resources: {requestz: {}}}\n";

TEST_F(OpenApi, StrictValidationRefusesUnknownFieldsAtAnyDepthWarnAndIgnorePruneThem) {
  auto r = kubectl({"apply", "-f", "-"}, kBadPod);  // --validate=strict is kubectl's default
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr(R"(Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "spec.containers[0].imagee", unknown field "spec.containers[0].resources.requestz")"));
  EXPECT_NE(kubectl({"get", "pod/bad", "-n", "prod"}).exit_code, 0);

  r = kubectl({"apply", "--validate=warn", "-f", "-"}, kBadPod);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr(R"(Warning: unknown field "spec.containers[0].imagee")"));
  auto got = kubectl({"get", "pod/bad", "-n", "prod", "-o", "jsonpath={.spec.containers[0]}"});
  EXPECT_EQ(got.out, R"({"image":"busybox","name":"c","resources":{}})") << "pruned from the stored object";

  // The Python client sends no fieldValidation: Warn, the API server's default.
  std::string cm = R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c1","namespace":"prod","labelz":{}},"data":{"a":"1"}})";
  json::value p = raw("POST", "/api/v1/namespaces/prod/configmaps", cm);
  ASSERT_EQ(kube::int_at(p, {"status"}).value_or(0), 201) << json::serialize(p);
  EXPECT_EQ(json::serialize(*kube::value_at(p, {"warnings"})), R"(["299 - \"unknown field \\\"metadata.labelz\\\"\""])");
  EXPECT_EQ(kube::value_at(p, {"body", "metadata", "labelz"}), nullptr);
  std::string cm2 = R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c2","namespace":"prod"},"extra":1})";
  p = raw("POST", "/api/v1/namespaces/prod/configmaps?fieldValidation=Ignore", cm2);
  ASSERT_EQ(kube::int_at(p, {"status"}).value_or(0), 201) << json::serialize(p);
  EXPECT_EQ(json::serialize(*kube::value_at(p, {"warnings"})), "[]");
  EXPECT_EQ(kube::value_at(p, {"body", "extra"}), nullptr);
  p = raw("POST", "/api/v1/namespaces/prod/configmaps?fieldValidation=Strict",
          R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c3","namespace":"prod"},"extra":1})");
  EXPECT_EQ(kube::int_at(p, {"status"}).value_or(0), 400) << json::serialize(p);
  EXPECT_EQ(kube::str_at(p, {"body", "message"}),
            R"(ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "extra")");

  // KubeVirt's VM: deep too (the VM's template metadata), free-form below the instance spec.
  const char* vm = "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: v2, namespace: prod}\n"
                   "spec:\n  runStrategy: Halted\n  template:\n    metadata: {labelz: {}}\n"
                   "    spec: {domain: {devices: {}, anything: 1}}\n";
  r = kubectl({"apply", "-f", "-"}, vm);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr(R"(strict decoding error: unknown field "spec.template.metadata.labelz")"));
}

TEST_F(OpenApi, ServerSideApplyOfAnUndeclaredFieldFailsAsTheTypedPatchDoes) {
  const char* pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: prod}\n"
                    "spec:\n  containers: [{name: c1, image: busybox, imagee: x}]\n";
  auto r = kubectl({"apply", "--server-side", "-f", "-"}, pod);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr(R"(failed to create typed patch object (prod/web; /v1, Kind=Pod): .spec.containers[name="c1"].imagee: field not declared in schema)"));
}

}  // namespace
}  // namespace kvb::testing
