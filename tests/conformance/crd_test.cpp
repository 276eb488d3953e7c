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


// A CRD with a structural schema (apiextensions-apiserver pkg/apiserver/schema,
// pkg/apiserver/validation): what a write must satisfy, what is pruned and
// defaulted, and a deprecated served version next to the storage version.
const char* kGadgetCrd = R"(apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget, shortNames: [gd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Mode, type: string, jsonPath: .spec.mode}
    - {name: Ready, type: boolean, jsonPath: .status.ready}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [replicas]
            properties:
              replicas: {type: integer, minimum: 1, maximum: 10}
              color: {type: string, enum: [red, blue]}
              label: {type: string, minLength: 2, maxLength: 5, pattern: '^[a-z]+$'}
              tags: {type: array, maxItems: 2, items: {type: string}}
              port: {x-kubernetes-int-or-string: true}
              mode: {type: string, default: fast}
              since: {type: string, format: date-time}
              note: {type: string, nullable: true}
              extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
              template: {type: object, x-kubernetes-embedded-resource: true, x-kubernetes-preserve-unknown-fields: true}
          status:
            type: object
            properties:
              ready: {type: boolean}
  - name: v1beta1
    served: true
    storage: false
    deprecated: true
    deprecationWarning: "example.com/v1beta1 Gadget is deprecated; use example.com/v1"
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
)";

std::string gadget(const std::string& name, const std::string& spec, const std::string& version = "v1") {
  return "apiVersion: example.com/" + version + "\nkind: Gadget\nmetadata: {name: " + name + ", namespace: prod}\nspec: " + spec + "\n";
}

class CrdSchemas : public Crds {
 protected:
  void SetUp() override {
    Crds::SetUp();
    if (HasFatalFailure()) return;
    apply(kGadgetCrd);
    auto est = kubectl({"wait", "--for=condition=Established", "crd/gadgets.example.com", "--timeout=20s"});
    ASSERT_EQ(est.exit_code, 0) << est.err;
  }
  // tests/conformance/crd_client.py (the official Python client's CustomObjectsApi).
  json::value py(std::vector<std::string> args) { return python_script("crd_client.py", std::move(args)); }
  // kubectl create of one Gadget: its stderr (empty when it was created).
  std::string refused(const std::string& name, const std::string& spec) {
    auto r = kubectl({"create", "-f", "-"}, gadget(name, spec));
    return r.exit_code == 0 ? std::string() : r.err;
  }
};

TEST_F(CrdSchemas, WritesAreValidatedAgainstTheSchemaWithUpstreamsFieldErrors) {
  EXPECT_THAT(refused("g1", "{replicas: three}"),
              HasSubstr(R"(The Gadget "g1" is invalid: spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string")"));
  EXPECT_THAT(refused("g1", "{replicas: 0}"), HasSubstr("spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"));
  EXPECT_THAT(refused("g1", "{replicas: 11}"), HasSubstr("spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"));
  EXPECT_THAT(refused("g1", "{color: red}"), HasSubstr("spec.replicas: Required value"));
  EXPECT_THAT(refused("g1", "{replicas: 1, color: pink}"), HasSubstr(R"(spec.color: Unsupported value: "pink": supported values: "red", "blue")"));
  EXPECT_THAT(refused("g1", "{replicas: 1, label: abcdef}"), HasSubstr("spec.label: Too long: may not be longer than 5"));
  EXPECT_THAT(refused("g1", "{replicas: 1, label: a}"), HasSubstr(R"(spec.label: Invalid value: "a": spec.label in body should be at least 2 chars long)"));
  EXPECT_THAT(refused("g1", "{replicas: 1, label: AB}"), HasSubstr(R"(spec.label: Invalid value: "AB": spec.label in body should match '^[a-z]+$')"));
  EXPECT_THAT(refused("g1", "{replicas: 1, tags: [a, b, c]}"), HasSubstr("spec.tags: Too many: 3: must have at most 2 items"));
  EXPECT_THAT(refused("g1", "{replicas: 1, port: true}"),
              HasSubstr(R"(spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean")"));
  EXPECT_THAT(refused("g1", "{replicas: 1, since: yesterday}"),
              HasSubstr(R"(spec.since: Invalid value: "yesterday": spec.since in body must be of type date-time: "yesterday")"));
  EXPECT_THAT(refused("g1", "{replicas: 1, template: {spec: {}}}"),
              HasSubstr("spec.template.apiVersion: Required value: must not be empty"));
  // Two problems: one cause each in Status.details (kubectl lists them), the message aggregates them in brackets.
  EXPECT_THAT(refused("g1", "{replicas: 0, color: pink}"),
              HasSubstr("The Gadget \"g1\" is invalid: \n* spec.color: Unsupported value: \"pink\": supported values: \"red\", \"blue\"\n"
                        "* spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1\n"));
  json::value two = py({"create", kc(), "example.com", "v1", "prod", "gadgets",
                        R"({"apiVersion":"example.com/v1","kind":"Gadget","metadata":{"name":"g4"},"spec":{"replicas":0,"color":"pink"}})"});
  EXPECT_THAT(std::string(kube::str_at(two, {"body", "message"})), HasSubstr("is invalid: [spec.replicas: Invalid value: 0: "));
  const auto* causes = kube::array_at(two, {"body", "details", "causes"});
  ASSERT_TRUE(causes && causes->size() == 2) << json::serialize(two);
  EXPECT_EQ(kube::str_at(causes->at(1), {"reason"}), "FieldValueNotSupported");
  EXPECT_EQ(kube::str_at(causes->at(1), {"field"}), "spec.color");
  EXPECT_EQ(refused("g1", "{replicas: 2, port: http, note: null, since: '2026-01-02T03:04:05Z', template: {apiVersion: v1, kind: Pod}}"), "");
  EXPECT_EQ(refused("g2", "{replicas: 2, port: 8443}"), "");

  // The Python client: the 422 Status with the same message.
  json::value r = py({"create", kc(), "example.com", "v1", "prod", "gadgets",
                      R"({"apiVersion":"example.com/v1","kind":"Gadget","metadata":{"name":"g3"},"spec":{"replicas":"x"}})"});
  EXPECT_EQ(kube::int_at(r, {"status"}).value_or(0), 422) << json::serialize(r);
  EXPECT_EQ(kube::str_at(r, {"body", "reason"}), "Invalid");
  EXPECT_EQ(kube::str_at(r, {"body", "message"}),
            R"(Gadget.example.com "g3" is invalid: spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string")");

  // Updates are validated too (kubectl patch; merge patch).
  auto p = kubectl({"patch", "gadget/g1", "-n", "prod", "--type=merge", "-p", R"({"spec":{"replicas":20}})"});
  EXPECT_NE(p.exit_code, 0);
  EXPECT_THAT(p.err, HasSubstr("spec.replicas: Invalid value: 20: spec.replicas in body should be less than or equal to 10"));
}

TEST_F(CrdSchemas, TheStatusSubresourceValidatesStatusOnly) {
  ASSERT_EQ(refused("g1", "{replicas: 1}"), "");
  auto bad = kubectl({"patch", "gadget/g1", "-n", "prod", "--subresource=status", "--type=merge", "-p", R"({"status":{"ready":"yes"}})"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr(R"(status.ready: Invalid value: "string": status.ready in body must be of type boolean: "string")"));
  json::value ok = py({"patch_status", kc(), "example.com", "v1", "prod", "gadgets", "g1", R"({"status":{"ready":true}})"});
  EXPECT_EQ(kube::int_at(ok, {"status"}).value_or(0), 200) << json::serialize(ok);
  json::value bad_py = py({"patch_status", kc(), "example.com", "v1", "prod", "gadgets", "g1", R"({"status":{"ready":3}})"});
  EXPECT_EQ(kube::int_at(bad_py, {"status"}).value_or(0), 422) << json::serialize(bad_py);
  // A main-resource write ignores (and so does not validate) status.
  auto main = kubectl({"patch", "gadget/g1", "-n", "prod", "--type=merge", "-p", R"({"status":{"ready":"no"},"spec":{"replicas":3}})"});
  EXPECT_EQ(main.exit_code, 0) << main.err;
  EXPECT_EQ(kubectl({"get", "gadget/g1", "-n", "prod", "-o", "jsonpath={.spec.replicas} {.status.ready}"}).out, "3 true");
}

TEST_F(CrdSchemas, UnknownFieldsArePrunedRefusedUnderStrictAndWarnedAboutOtherwise) {
  // kubectl validates strictly by default (fieldValidation=Strict).
  auto strict = kubectl({"create", "-f", "-"}, gadget("g1", "{replicas: 1, bogus: 1, extra: {free: form}}"));
  EXPECT_NE(strict.exit_code, 0);
  EXPECT_THAT(strict.err, HasSubstr(R"(Gadget in version "v1" cannot be handled as a Gadget: strict decoding error: unknown field "spec.bogus")"));
  auto meta = kubectl({"create", "-f", "-"}, "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g0, namespace: prod, colour: red}\nspec: {replicas: 1}\n");
  EXPECT_THAT(meta.err, HasSubstr(R"(strict decoding error: unknown field "metadata.colour")"));
  // --validate=warn: created, pruned, warned about.
  auto warn = kubectl({"create", "--validate=warn", "-f", "-"}, gadget("g1", "{replicas: 1, bogus: 1, extra: {free: form}}"));
  EXPECT_EQ(warn.exit_code, 0) << warn.err;
  EXPECT_THAT(warn.err, HasSubstr(R"(unknown field "spec.bogus")"));
  auto got = kubectl({"get", "gadget/g1", "-n", "prod", "-o", "json"});
  json::value g = json::parse(got.out);
  EXPECT_EQ(kube::value_at(g, {"spec", "bogus"}), nullptr) << "pruned";
  EXPECT_EQ(kube::str_at(g, {"spec", "extra", "free"}), "form") << "x-kubernetes-preserve-unknown-fields keeps it";
  EXPECT_EQ(kube::str_at(g, {"spec", "mode"}), "fast") << "defaulted";

  // The Python client sends no fieldValidation: the server's default, Warn.
  json::value r = py({"create", kc(), "example.com", "v1", "prod", "gadgets",
                      R"({"apiVersion":"example.com/v1","kind":"Gadget","metadata":{"name":"g2"},"spec":{"replicas":1,"mode":"slow","zzz":{"a":1}}})"});
  EXPECT_EQ(kube::int_at(r, {"status"}).value_or(0), 201) << json::serialize(r);
  EXPECT_EQ(kube::value_at(r, {"body", "spec", "zzz"}), nullptr);
  EXPECT_EQ(kube::str_at(r, {"body", "spec", "mode"}), "slow");
  const auto* w = kube::array_at(r, {"warnings"});
  ASSERT_TRUE(w && w->size() == 1) << json::serialize(r);
  EXPECT_EQ(std::string(w->at(0).as_string()), R"(299 - "unknown field \"spec.zzz\"")");
  json::value strict_py = py({"create", kc(), "example.com", "v1", "prod", "gadgets",
                              R"({"apiVersion":"example.com/v1","kind":"Gadget","metadata":{"name":"g3"},"spec":{"replicas":1,"zzz":1}})",
                              "Strict"});
  EXPECT_EQ(kube::int_at(strict_py, {"status"}).value_or(0), 400) << json::serialize(strict_py);
}

TEST_F(CrdSchemas, VersionsAreServedConvertedWithDeprecationWarningsAndPrinterColumns) {
  // Written through the deprecated version, read through the storage version.
  auto old = kubectl({"create", "-f", "-"}, gadget("g1", "{replicas: 4}", "v1beta1"));
  EXPECT_EQ(old.exit_code, 0) << old.err;
  EXPECT_THAT(old.err, HasSubstr("Warning: example.com/v1beta1 Gadget is deprecated; use example.com/v1"));
  EXPECT_EQ(kubectl({"get", "gadgets.v1.example.com", "g1", "-n", "prod", "-o", "jsonpath={.apiVersion} {.spec.mode}"}).out,
            "example.com/v1 fast");
  auto beta = kubectl({"get", "gadgets.v1beta1.example.com", "g1", "-n", "prod", "-o", "jsonpath={.apiVersion}"});
  EXPECT_EQ(beta.out, "example.com/v1beta1");
  EXPECT_THAT(beta.err, HasSubstr("Warning: example.com/v1beta1 Gadget is deprecated; use example.com/v1"));
  json::value py_get = py({"get", kc(), "example.com", "v1", "prod", "gadgets", "g1"});
  EXPECT_EQ(kube::str_at(py_get, {"body", "apiVersion"}), "example.com/v1") << json::serialize(py_get);
  json::value py_beta = py({"get", kc(), "example.com", "v1beta1", "prod", "gadgets", "g1"});
  EXPECT_EQ(kube::str_at(py_beta, {"body", "apiVersion"}), "example.com/v1beta1");
  const auto* w = kube::array_at(py_beta, {"warnings"});
  ASSERT_TRUE(w && w->size() == 1) << json::serialize(py_beta);
  EXPECT_THAT(std::string(w->at(0).as_string()), HasSubstr("is deprecated; use example.com/v1"));
  EXPECT_EQ(kubectl({"get", "crd/gadgets.example.com", "-o", "jsonpath={.status.storedVersions}"}).out, R"(["v1"])");

  // additionalPrinterColumns in kubectl's table (Name, then the columns; no Age unless declared).
  ASSERT_EQ(kubectl({"patch", "gadget/g1", "-n", "prod", "--subresource=status", "--type=merge", "-p", R"({"status":{"ready":true}})"}).exit_code, 0);
  auto table = kubectl({"get", "gadgets", "-n", "prod"});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("NAME   REPLICAS   MODE   READY"));
  EXPECT_THAT(table.out, ::testing::ContainsRegex("g1 +4 +fast +true"));
}

// The CRD's schema is in the OpenAPI v3 document: `kubectl explain` reads it.
TEST_F(CrdSchemas, KubectlExplainReadsTheSchema) {
  auto field = kubectl({"explain", "gadgets.spec.replicas"});
  EXPECT_EQ(field.exit_code, 0) << field.err;
  EXPECT_THAT(field.out, HasSubstr("KIND:       Gadget"));
  EXPECT_THAT(field.out, HasSubstr("FIELD: replicas <integer>"));
  auto spec = kubectl({"explain", "gadget.spec"});
  EXPECT_EQ(spec.exit_code, 0) << spec.err;
  EXPECT_THAT(spec.out, ::testing::ContainsRegex("replicas\\s+<integer> -required-"));
  EXPECT_THAT(spec.out, ::testing::ContainsRegex("color\\s+<string>"));
}

// CRDValidationRatcheting (on by default in 1.30-1.32): a value the schema no
// longer allows may stay while it is unchanged; changing it is validated.
TEST_F(CrdSchemas, AnUpdateMayKeepAnUnchangedValueTheSchemaNoLongerAllows) {
  ASSERT_EQ(refused("g1", "{replicas: 8}"), "");
  auto tighter = kubectl({"patch", "crd/gadgets.example.com", "--type=json", "-p",
                          R"([{"op":"replace","path":"/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/replicas/maximum","value":3}])"});
  ASSERT_EQ(tighter.exit_code, 0) << tighter.err;
  auto other = kubectl({"patch", "gadget/g1", "-n", "prod", "--type=merge", "-p", R"({"spec":{"mode":"slow"}})"});
  EXPECT_EQ(other.exit_code, 0) << other.err;
  json::value py_other = py({"patch", kc(), "example.com", "v1", "prod", "gadgets", "g1", R"({"spec":{"color":"red"}})"});
  EXPECT_EQ(kube::int_at(py_other, {"status"}).value_or(0), 200) << json::serialize(py_other);
  json::value py_changed = py({"patch", kc(), "example.com", "v1", "prod", "gadgets", "g1", R"({"spec":{"replicas":9}})"});
  EXPECT_EQ(kube::int_at(py_changed, {"status"}).value_or(0), 422) << json::serialize(py_changed);
  EXPECT_THAT(std::string(kube::str_at(py_changed, {"body", "message"})), HasSubstr("spec.replicas in body should be less than or equal to 3"));
  EXPECT_THAT(refused("g2", "{replicas: 8}"), HasSubstr("should be less than or equal to 3")) << "a new object gets no grace";
}

TEST_F(CrdSchemas, TheCrdItselfIsValidated) {
  auto wrong_name = kubectl({"create", "-f", "-"}, R"(apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gizmo.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gizmos, kind: Gizmo}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}
)");
  EXPECT_NE(wrong_name.exit_code, 0);
  EXPECT_THAT(wrong_name.err, HasSubstr(R"(metadata.name: Invalid value: "gizmo.example.com": must be spec.names.plural+"."+spec.group)"));
  auto two_storage = kubectl({"create", "-f", "-"}, R"(apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gizmos.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gizmos, kind: Gizmo}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}
  - {name: v2, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}
)");
  EXPECT_THAT(two_storage.err, HasSubstr("must have exactly one version marked as storage version"));
  json::value not_structural = py({"crd", kc(), R"({"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
    "metadata":{"name":"gizmos.example.com"},"spec":{"group":"example.com","scope":"Namespaced","names":{"plural":"gizmos","kind":"Gizmo"},
    "versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object","properties":{"spec":{"properties":{}}}}}}]}})"});
  EXPECT_EQ(kube::int_at(not_structural, {"status"}).value_or(0), 422) << json::serialize(not_structural);
  EXPECT_THAT(std::string(kube::str_at(not_structural, {"body", "message"})),
              HasSubstr("spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"));

  json::value no_dot = py({"crd", kc(), R"({"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
    "metadata":{"name":"gizmos.example"},"spec":{"group":"example","scope":"Galaxy","names":{"plural":"gizmos","kind":"Gizmo"},
    "versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object"}}}]}})"});
  EXPECT_EQ(kube::int_at(no_dot, {"status"}).value_or(0), 422) << json::serialize(no_dot);
  EXPECT_THAT(std::string(kube::str_at(no_dot, {"body", "message"})),
              HasSubstr(R"(spec.group: Invalid value: "example": should be a domain with at least one dot)"));
  EXPECT_THAT(std::string(kube::str_at(no_dot, {"body", "message"})),
              HasSubstr(R"(spec.scope: Unsupported value: "Galaxy": supported values: "Cluster", "Namespaced")"));
  // Dropping the version objects are stored in (status.storedVersions) is refused.
  std::string only_beta = kGadgetCrd;
  only_beta = only_beta.substr(0, only_beta.find("  - name: v1\n")) + "  - name: v1beta1\n    served: true\n    storage: true\n"
              "    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}\n";
  auto drop = kubectl({"apply", "-f", "-"}, only_beta);
  EXPECT_NE(drop.exit_code, 0);
  EXPECT_THAT(drop.err, HasSubstr(R"(status.storedVersions[0]: Invalid value: "v1": must appear in spec.versions)")) << drop.err;

  // A second CRD of the group claiming Gadget's kind: NamesAccepted=False, not established, not served.
  apply(R"(apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gizmos.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gizmos, kind: Gadget, listKind: GizmoList}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}
)");
  auto cond = kubectl({"wait", "--for=condition=NamesAccepted=False", "crd/gizmos.example.com", "--timeout=20s"});
  EXPECT_EQ(cond.exit_code, 0) << cond.err;
  EXPECT_EQ(kubectl({"get", "crd/gizmos.example.com", "-o",
                     R"(jsonpath={.status.conditions[?(@.type=="NamesAccepted")].reason} {.status.conditions[?(@.type=="NamesAccepted")].message} {.status.conditions[?(@.type=="Established")].status})"})
                .out,
            R"(KindConflict "Gadget" is already in use False)");
  EXPECT_NE(kubectl({"get", "gizmos", "-n", "prod"}).exit_code, 0);
  // Once Gadget's CRD is gone its names are free: the waiting CRD is accepted and served.
  auto del = kubectl({"delete", "crd/gadgets.example.com", "--timeout=30s"});
  ASSERT_EQ(del.exit_code, 0) << del.err;
  auto est = kubectl({"wait", "--for=condition=Established", "crd/gizmos.example.com", "--timeout=20s"});
  EXPECT_EQ(est.exit_code, 0) << est.err;
  EXPECT_EQ(kubectl({"get", "crd/gizmos.example.com", "-o", "jsonpath={.status.acceptedNames.kind}"}).out, "Gadget");
}

}  // namespace
}  // namespace kvb::testing
