// Conformance of kvbackup-testcluster with REAL clients (issue 15): kubectl and
// the official Python client (/usr/bin/python3 with python3-kubernetes) against
// one simulator started for the whole binary. Each test is one behaviour of
// Kubernetes 1.31 / KubeVirt 1.8 that the simulator once got wrong; each would
// fail if that fix were removed. A missing kubectl or Python client FAILS
// these tests: they never skip.
#include "common/subprocess.h"
#include "kube/object.h"
#include "tests/support/test_cluster.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <sstream>

namespace kvb::testing {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;
using ::testing::Not;

const char* kScenario = R"(
kubevirtVersion: "1.8"
namespaces:
  - name: prod
    vms:
      - name: db
        volumes:
          - {name: rootdisk, type: dataVolume, size: 10Gi}
          - {name: cloudinit, type: cloudInitNoCloud}
      - name: web
        volumes:
          - {name: data, type: persistentVolumeClaim, size: 1Gi}
    pods:
      - name: tools
        containers:
          - {name: shell, image: "busybox:1.36", log: "hello from shell\nsecond line\n"}
          - {name: sidecar, image: "registry.example/sidecar:2"}
tokens:
  - user: reader
    token: reader-token
    rules:
      - {verbs: [get, list, watch], resources: [pods, virtualmachines]}
)";

class Conformance : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tc_ = new TestCluster(kScenario); }
  static void TearDownTestSuite() {
    delete tc_;
    tc_ = nullptr;
  }

  // kubectl with the cluster's kubeconfig; a missing kubectl fails the test.
  static ProcessResult kubectl(std::vector<std::string> args, const std::string& in = {}) {
    ProcessSpec spec;
    spec.argv = {"kubectl", "--kubeconfig", tc_->kubeconfig().string()};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.stdin_data = in;
    spec.timeout = std::chrono::seconds(60);
    auto r = run_process(spec);
    if (!r) {
      ADD_FAILURE() << "kubectl could not be run (is it installed? scripts/deps): " << r.error().describe();
      return ProcessResult{};
    }
    return *r;
  }
  static json::object kubectl_json(std::vector<std::string> args) {
    args.insert(args.end(), {"-o", "json"});
    auto r = kubectl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    boost::system::error_code ec;
    auto v = json::parse(r.out, ec);
    return (!ec && v.is_object()) ? v.as_object() : json::object{};
  }

  // The Python checks (tests/conformance/python_client.py), run once.
  static const json::object& python(const std::string& check) {
    static std::map<std::string, json::object> results;
    static std::string failure;
    static bool ran = false;
    if (!ran) {
      ran = true;
      ProcessSpec spec;
      spec.argv = {"/usr/bin/python3", std::string(KVB_SOURCE_DIR) + "/tests/conformance/python_client.py",
                   tc_->kubeconfig().string()};
      spec.timeout = std::chrono::seconds(60);
      auto r = run_process(spec);
      if (!r) {
        failure = "/usr/bin/python3 could not be run: " + r.error().describe();
      } else {
        std::istringstream lines(r->out);
        for (std::string line; std::getline(lines, line);) {
          boost::system::error_code ec;
          auto v = json::parse(line, ec);
          if (!ec && v.is_object()) results[std::string(kube::str_at(v, {"check"}))] = v.as_object();
        }
        failure = "python_client.py exited " + std::to_string(r->exit_code) + "; stderr: " + r->err + "; stdout: " + r->out;
      }
    }
    static const json::object missing{{"ok", false}};
    auto it = results.find(check);
    if (it == results.end()) {
      ADD_FAILURE() << "no result for Python check " << check << ": " << failure;
      return missing;
    }
    return it->second;
  }
  static void expect_python(const std::string& check) {
    const auto& r = python(check);
    EXPECT_TRUE(kube::bool_at(r, {"ok"}).value_or(false)) << check << ": " << kube::str_at(r, {"detail"});
  }

  static TestCluster* tc_;
};
TestCluster* Conformance::tc_ = nullptr;

// ---- real clients are present (never a skip) ----
TEST_F(Conformance, KubectlAndPythonClientArePresent) {
  auto v = kubectl({"version", "--client"});
  EXPECT_EQ(v.exit_code, 0) << "kubectl is required: " << v.err;
  expect_python("import");
}

// ---- item 1: dryRun in the DeleteOptions body ----
TEST_F(Conformance, KubectlDeleteDryRunServerDeletesNothing) {
  auto r = kubectl({"delete", "vm", "db", "-n", "prod", "--dry-run=server"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("(server dry run)"));
  EXPECT_EQ(kubectl({"get", "vm", "db", "-n", "prod"}).exit_code, 0) << "the VM was deleted by a dry run";
  EXPECT_EQ(kubectl({"get", "vmi", "db", "-n", "prod"}).exit_code, 0) << "the VMI was cascaded by a dry run";
}
TEST_F(Conformance, PythonDeleteOptionsDryRun) { expect_python("delete_dry_run_in_body"); }

// ---- item 2: query booleans ----
TEST_F(Conformance, PythonWatchStreamYieldsEvents) { expect_python("watch_true_streams"); }

// ---- item 10: object shapes ----
TEST_F(Conformance, KubectlWaitForVmReadyCondition) {
  auto r = kubectl({"wait", "--for=condition=Ready", "vm/db", "-n", "prod", "--timeout=10s"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}
TEST_F(Conformance, VmStatusCopiesVmiConditionsAndReportsGenerationsAndSnapshots) {
  auto vm = kubectl_json({"get", "vm", "db", "-n", "prod"});
  std::map<std::string, std::string> conds;
  if (const auto* cs = kube::array_at(vm, {"status", "conditions"})) {
    for (const auto& c : *cs) conds[std::string(kube::str_at(c, {"type"}))] = std::string(kube::str_at(c, {"status"}));
  }
  EXPECT_EQ(conds["Ready"], "True");
  EXPECT_EQ(conds["AgentConnected"], "True");
  EXPECT_EQ(kube::int_at(vm, {"status", "observedGeneration"}), kube::int_at(vm, {"metadata", "generation"}));
  std::map<std::string, json::object> snaps;
  if (const auto* ss = kube::array_at(vm, {"status", "volumeSnapshotStatuses"})) {
    for (const auto& s : *ss) snaps[std::string(kube::str_at(s, {"name"}))] = s.as_object();
  }
  EXPECT_EQ(kube::bool_at(snaps["rootdisk"], {"enabled"}), true);
  EXPECT_EQ(kube::str_at(snaps["cloudinit"], {"reason"}), "Snapshot is not supported for this volumeSource type [cloudinit]");
}
TEST_F(Conformance, LauncherPodVolumesCarryTheVmiVolumeNames) {
  auto pod = kubectl_json({"get", "pod", tc_->launcher_pod("prod", "db"), "-n", "prod"});
  std::vector<std::string> names;
  if (const auto* vs = kube::array_at(pod, {"spec", "volumes"})) {
    for (const auto& v : *vs) names.emplace_back(kube::str_at(v, {"name"}));
  }
  EXPECT_THAT(names, ::testing::Contains("rootdisk"));
  EXPECT_THAT(names, Not(::testing::Contains("db-rootdisk")));
}
TEST_F(Conformance, VmiIpIsTheLauncherPodIp) {
  auto pod = kubectl_json({"get", "pod", tc_->launcher_pod("prod", "web"), "-n", "prod"});
  auto vmi = kubectl_json({"get", "vmi", "web", "-n", "prod"});
  const auto* ifs = kube::array_at(vmi, {"status", "interfaces"});
  ASSERT_TRUE(ifs && !ifs->empty());
  EXPECT_EQ(kube::str_at((*ifs)[0], {"ipAddress"}), kube::str_at(pod, {"status", "podIP"}));
}
TEST_F(Conformance, PythonTypedPodListWithImageIds) { expect_python("typed_pod_list"); }
TEST_F(Conformance, PythonPodConditions) { expect_python("pod_conditions"); }
TEST_F(Conformance, PythonDistinctPodIps) { expect_python("distinct_pod_ips"); }
TEST_F(Conformance, PythonNamespaceNameLabel) { expect_python("namespace_metadata_name_label"); }
TEST_F(Conformance, PythonUidsAreRfc4122Version4) { expect_python("uid_rfc4122_v4"); }
TEST_F(Conformance, PythonPvcVolumeModeDefaultsToFilesystem) { expect_python("pvc_volume_mode_default"); }

// ---- item 11: missing APIs ----
TEST_F(Conformance, KubectlLogsReturnsTheContainerLog) {
  auto r = kubectl({"logs", "tools", "-c", "shell", "-n", "prod"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "hello from shell\nsecond line\n");
}
TEST_F(Conformance, KubectlAuthCanIAnswersFromTheTokenRules) {
  auto admin = kubectl({"auth", "can-i", "delete", "virtualmachines.kubevirt.io", "-n", "prod"});
  EXPECT_EQ(admin.exit_code, 0) << admin.err;
  EXPECT_EQ(admin.out, "yes\n");
  auto reader_list = kubectl({"--context", "reader", "auth", "can-i", "list", "pods", "-n", "prod"});
  EXPECT_EQ(reader_list.out, "yes\n") << reader_list.err;
  auto reader_delete = kubectl({"--context", "reader", "auth", "can-i", "delete", "pods", "-n", "prod"});
  EXPECT_EQ(reader_delete.exit_code, 1);
  EXPECT_EQ(reader_delete.out, "no\n") << reader_delete.err;
}
TEST_F(Conformance, PythonVersionApiWithTrailingSlash) { expect_python("version_trailing_slash"); }
TEST_F(Conformance, PythonSelfSubjectAccessReview) { expect_python("self_subject_access_review"); }
TEST_F(Conformance, KubectlListsNodesAndServiceAccounts) {
  auto nodes = kubectl({"get", "nodes", "-o", "name"});
  ASSERT_EQ(nodes.exit_code, 0) << nodes.err;
  EXPECT_THAT(nodes.out, HasSubstr("node/node01"));
  auto sas = kubectl({"get", "serviceaccounts", "-n", "prod", "-o", "name"});
  ASSERT_EQ(sas.exit_code, 0) << sas.err;
  EXPECT_THAT(sas.out, HasSubstr("serviceaccount/default"));
}
TEST_F(Conformance, PythonDeleteCollection) { expect_python("deletecollection"); }
TEST_F(Conformance, KubectlGetVmShowsStatusAndReadyColumns) {
  auto r = kubectl({"get", "vm", "db", "-n", "prod"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::MatchesRegex("NAME +AGE +STATUS +READY\ndb +[0-9]+[smh].* +Running +True\n"));
}
TEST_F(Conformance, KubectlGetVmiShowsPhaseIpNodeReady) {
  auto r = kubectl({"get", "vmi", "db", "-n", "prod"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::MatchesRegex("NAME +AGE +PHASE +IP +NODENAME +READY\ndb +[0-9]+[smh].* +Running +10\\.244\\.[0-9.]+ +node01 +True\n"));
}
TEST_F(Conformance, KubectlGetPvcShowsUpstreamColumns) {
  auto r = kubectl({"get", "pvc", "db-rootdisk", "-n", "prod"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("NAME          STATUS   VOLUME"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("CAPACITY +ACCESS MODES +STORAGECLASS +VOLUMEATTRIBUTESCLASS +AGE"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("db-rootdisk +Bound +pvc-"));
}
TEST_F(Conformance, KubectlGetPodsShowsReadyStatusRestarts) {
  auto r = kubectl({"get", "pod", "tools", "-n", "prod"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::MatchesRegex("NAME +READY +STATUS +RESTARTS +AGE\ntools +2/2 +Running +0 +[0-9]+[smh].*\n"));
}

// ---- item 9: API semantics ----
TEST_F(Conformance, KubectlFieldSelectorOnPvcIsRefused) {
  auto r = kubectl({"get", "pvc", "-n", "prod", "--field-selector", "spec.volumeName=x"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("field label not supported: spec.volumeName"));
}
TEST_F(Conformance, PythonFieldSelectors) {
  expect_python("field_selector_pvc_unsupported");
  expect_python("field_selector_pod_phase");
  expect_python("field_selector_custom_resource");
}
TEST_F(Conformance, PythonContinueServedFromTheFirstPagesSnapshot) { expect_python("continue_from_snapshot"); }
TEST_F(Conformance, PythonFinalizersHoldDeletion) { expect_python("finalizers_hold_deletion"); }
TEST_F(Conformance, PythonNamespaceTerminatingRefusesNewObjects) { expect_python("namespace_terminating"); }
TEST_F(Conformance, PythonDeletePreconditionUid) { expect_python("delete_precondition_uid"); }
TEST_F(Conformance, KubectlStrategicMergePatchMergesContainersByName) {
  auto r = kubectl({"patch", "pod", "tools", "-n", "prod", "-p", R"({"spec":{"containers":[{"name":"shell","image":"busybox:1.37"}]}})"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto pod = kubectl_json({"get", "pod", "tools", "-n", "prod"});
  std::map<std::string, std::string> images;
  if (const auto* cs = kube::array_at(pod, {"spec", "containers"})) {
    for (const auto& c : *cs) images[std::string(kube::str_at(c, {"name"}))] = std::string(kube::str_at(c, {"image"}));
  }
  EXPECT_EQ(images.size(), 2u) << "a strategic merge patch keeps the containers it does not name";
  EXPECT_EQ(images["shell"], "busybox:1.37");
}
TEST_F(Conformance, KubectlStrategicMergePatchOnACustomResourceIs415) {
  auto r = kubectl({"patch", "vm", "db", "-n", "prod", "--type=strategic", "-p", R"({"metadata":{"labels":{"x":"y"}}})"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("the body of the request was in an unknown format"));
}

// ---- item 8: write validation ----
const char* kVmYaml = R"(apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: %NAME%
  namespace: prod
spec:
  %SPEC%
  template:
    spec:
      domain:
        devices: {}
)";
std::string vm_yaml(const std::string& name, const std::string& spec_line) {
  std::string y = kVmYaml;
  y.replace(y.find("%NAME%"), 6, name);
  y.replace(y.find("%SPEC%"), 6, spec_line);
  return y;
}
TEST_F(Conformance, KubectlStrictValidationNamesTheUnknownField) {
  auto r = kubectl({"create", "-f", "-"}, vm_yaml("strict", "runStrategy: Halted\n  bogusField: 1"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("unknown field \"spec.bogusField\""));
}
TEST_F(Conformance, KubectlCreateWithResourceVersionIsRefused) {
  // `kubectl create -f` clears resourceVersion itself; --raw sends the body as it is.
  auto r = kubectl({"create", "--raw", "/api/v1/namespaces/prod/configmaps", "-f", "-"},
                   R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"withrv","resourceVersion":"12"}})");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("resourceVersion should not be set on objects to be created"));
}
TEST_F(Conformance, KubectlVmWithRunningAndRunStrategyIsRefused) {
  auto r = kubectl({"create", "-f", "-"}, vm_yaml("both", "running: true\n  runStrategy: Always"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("Running and RunStrategy are mutually exclusive"));
}
TEST_F(Conformance, KubectlVmWithAnInvalidRunStrategyIsRefused) {
  auto r = kubectl({"create", "-f", "-"}, vm_yaml("sometimes", "runStrategy: Sometimes"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("Invalid RunStrategy (Sometimes)"));
}
TEST_F(Conformance, PythonInvalidNamesAndLabels) {
  expect_python("invalid_name");
  expect_python("label_value_too_long");
  expect_python("create_with_resource_version");
}
TEST_F(Conformance, PythonPvcSpecIsImmutableButGrows) { expect_python("pvc_spec_immutable"); }
TEST_F(Conformance, PythonCustomResourcePutNeedsResourceVersion) { expect_python("custom_resource_put_needs_resource_version"); }

// ---- item 13 ----
TEST_F(Conformance, PythonListAtAFutureResourceVersionTimesOut) { expect_python("list_future_resource_version"); }
TEST_F(Conformance, PythonWatchFromAFutureResourceVersionSkipsOlderChanges) {
  expect_python("watch_from_a_future_resource_version");
}
TEST_F(Conformance, PythonInjected410IsAnInStreamErrorEvent) { expect_python("watch_410_is_an_error_event"); }
TEST_F(Conformance, PythonCreateDropsClientStatus) { expect_python("create_drops_status"); }
TEST_F(Conformance, PvcEventsComeFromThePersistentVolumeController) {
  auto r = kubectl({"create", "-f", "-"},
                   "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: nosuchclass\n  namespace: prod\nspec:\n"
                   "  accessModes: [ReadWriteOnce]\n  storageClassName: nosuch\n  resources: {requests: {storage: 1Gi}}\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto ev = kubectl({"get", "events", "-n", "prod", "--field-selector", "involvedObject.name=nosuchclass", "-o",
                     "jsonpath={.items[*].source.component}"});
  ASSERT_EQ(ev.exit_code, 0) << ev.err;
  EXPECT_THAT(ev.out, HasSubstr("persistentvolume-controller"));
  EXPECT_THAT(ev.out, Not(HasSubstr("virt-handler")));
}
TEST_F(Conformance, KubectlGetEventsShowsTheEventPrinterColumns) {
  auto r = kubectl({"get", "events", "-n", "prod", "--field-selector", "involvedObject.name=nosuchclass"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::StartsWith("LAST SEEN"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("LAST SEEN +TYPE +REASON +OBJECT +MESSAGE\n"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("Warning +ProvisioningFailed +persistentvolumeclaim/nosuchclass +storageclass"));
}

}  // namespace
}  // namespace kvb::testing
