// The test cluster's API surface through the kvbackup client: REST semantics,
// selectors, pagination, watches, exec, RBAC-lite and injected faults.
#include "kube/api_status.h"
#include "kube/object.h"
#include "kube/watch.h"
#include "testcluster/json_patch.h"
#include "testcluster/store.h"
#include "tests/support/test_cluster.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kvb::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

const char* kScenario = R"(
kubevirtVersion: "1.8"
namespaces:
  - name: prod
    vms:
      - {name: db, labels: {tier: data}}
      - {name: web, count: 3, labels: {tier: front}}
    pods:
      - name: app
        labels: {app: shop}
        containers: [{name: main}, {name: sidecar}]
        exec:
          - {pattern: "flush-tables", container: main, stdout: "flushed\n", exitCode: 0}
          - {pattern: "broken", exitCode: 7, stderr: "it broke\n"}
tokens:
  - user: system:serviceaccount:kvbackup:reader
    token: reader-token
    rules:
      - {verbs: [get, list, watch], resources: [pods, virtualmachines]}
)";

kube::RestConfig with_token(const TestCluster& tc, const std::string& token) {
  auto rc = tc.rest_config();
  rc.user.token = Secret(token);
  return rc;
}

TEST(SimApi, ListsWithLabelSelectorsAndPages) {
  TestCluster tc(kScenario);
  auto c = tc.client();
  const kube::ResourceRef vms{"kubevirt.io", "v1", "virtualmachines", "VirtualMachine", true};
  auto count = [&](const std::string& sel) {
    kube::ListOptions lo;
    lo.label_selector = sel;
    auto l = c->list(vms, "prod", lo);
    return l ? static_cast<int>(l->items.size()) : -1;
  };
  EXPECT_EQ(count(""), 4);
  EXPECT_EQ(count("tier=front"), 3);
  EXPECT_EQ(count("tier!=front"), 1);
  EXPECT_EQ(count("tier in (data,front)"), 4);
  EXPECT_EQ(count("tier notin (front)"), 1);
  EXPECT_EQ(count("tier"), 4);
  EXPECT_EQ(count("!tier"), 0);
  kube::ListOptions paged;
  paged.page_size = 1;
  auto all = c->list(vms, "", paged);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->items.size(), 4u);
  EXPECT_EQ(all->pages, 4);
  kube::ListOptions bad;
  bad.label_selector = "tier in (a";
  auto err = c->list(vms, "prod", bad);
  ASSERT_FALSE(err);
  EXPECT_EQ(err.error().http_status, 400);
}

TEST(SimApi, FieldSelectorsOnPods) {
  TestCluster tc(kScenario);
  kube::ListOptions lo;
  lo.field_selector = "metadata.name=app";
  auto l = tc.client()->list(kube::resources::kPods, "prod", lo);
  ASSERT_TRUE(l);
  ASSERT_EQ(l->items.size(), 1u);
  lo.field_selector = "status.phase=Running,metadata.namespace=prod";
  EXPECT_EQ(tc.client()->list(kube::resources::kPods, "", lo)->items.size(), 5u);
}

TEST(SimApi, OptimisticConcurrencyAndTypedErrors) {
  TestCluster tc(kScenario);
  auto c = tc.client();
  json::object cm{{"metadata", json::object{{"name", "settings"}}}, {"data", json::object{{"a", "1"}}}};
  auto created = c->create(kube::resources::kConfigMaps, "prod", cm);
  ASSERT_TRUE(created);
  EXPECT_FALSE(kube::uid_of(*created).empty());
  EXPECT_FALSE(kube::str_at(*created, {"metadata", "creationTimestamp"}).empty());
  auto dup = c->create(kube::resources::kConfigMaps, "prod", cm);
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, Errc::kAlreadyExists);
  json::object v1 = *created;
  v1["data"] = json::object{{"a", "2"}};
  auto updated = c->update(kube::resources::kConfigMaps, "prod", v1);
  ASSERT_TRUE(updated);
  EXPECT_NE(kube::resource_version_of(*updated), kube::resource_version_of(*created));
  auto stale = c->update(kube::resources::kConfigMaps, "prod", v1);  // v1 still carries the old resourceVersion
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, Errc::kConflict);
  EXPECT_THAT(stale.error().message, HasSubstr("the object has been modified"));
  auto missing = c->get(kube::resources::kConfigMaps, "prod", "nope");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::kNotFound);
  EXPECT_THAT(missing.error().message, HasSubstr("configmaps \"nope\" not found"));
  auto wrong_ns = c->create(kube::resources::kConfigMaps, "nowhere", cm);
  ASSERT_FALSE(wrong_ns);
  EXPECT_THAT(wrong_ns.error().message, HasSubstr("namespaces \"nowhere\" not found"));
  json::object gen{{"metadata", json::object{{"generateName", "snap-"}}}};
  auto g = c->create(kube::resources::kConfigMaps, "prod", gen);
  ASSERT_TRUE(g);
  EXPECT_EQ(std::string(kube::name_of(*g)).rfind("snap-", 0), 0u);
  EXPECT_EQ(kube::name_of(*g).size(), 10u);
}

TEST(SimApi, MergeAndJsonPatch) {
  TestCluster tc(kScenario);
  auto c = tc.client();
  ASSERT_TRUE(c->create(kube::resources::kConfigMaps, "prod",
                        json::object{{"metadata", json::object{{"name", "p"}}}, {"data", json::object{{"a", "1"}, {"b", "2"}}}}));
  auto m = c->patch(kube::resources::kConfigMaps, "prod", "p", kube::PatchType::kMerge,
                    json::parse(R"({"data":{"a":null,"c":"3"}})"));
  ASSERT_TRUE(m);
  EXPECT_EQ(json::serialize(m->at("data")), R"({"b":"2","c":"3"})");
  auto j = c->patch(kube::resources::kConfigMaps, "prod", "p", kube::PatchType::kJson,
                    json::parse(R"([{"op":"replace","path":"/data/b","value":"20"},{"op":"add","path":"/metadata/labels","value":{"x":"y"}}])"));
  ASSERT_TRUE(j) << j.error().describe();
  EXPECT_EQ(kube::str_at(*j, {"data", "b"}), "20");
  EXPECT_EQ(kube::label_of(*j, "x"), "y");
  auto bad = c->patch(kube::resources::kConfigMaps, "prod", "p", kube::PatchType::kJson,
                      json::parse(R"([{"op":"test","path":"/data/b","value":"nope"}])"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().http_status, 422);
}

TEST(JsonPatch, Rfc6902Operations) {
  json::value doc = json::parse(R"({"a":{"b":[1,2,3]},"c":"x"})");
  ASSERT_TRUE(testcluster::apply_json_patch(doc, json::parse(R"([
    {"op":"add","path":"/a/b/1","value":9},
    {"op":"remove","path":"/a/b/0"},
    {"op":"move","from":"/c","path":"/d"},
    {"op":"copy","from":"/d","path":"/e"},
    {"op":"add","path":"/a/b/-","value":4},
    {"op":"add","path":"/f~1g","value":true}])")));
  EXPECT_EQ(json::serialize(doc), R"({"a":{"b":[9,2,3,4]},"d":"x","e":"x","f/g":true})");
  json::value before = doc;
  EXPECT_FALSE(testcluster::apply_json_patch(doc, json::parse(R"([{"op":"add","path":"/z","value":1},{"op":"remove","path":"/nope"}])")));
  EXPECT_EQ(doc, before) << "all or nothing";
}

TEST(SimApi, WatchStartsFromAResourceVersionAndExpiresOldOnes) {
  testcluster::Registry reg;
  testcluster::Store store(reg, /*history=*/3);
  const auto& ns = *reg.find("", "v1", "namespaces");
  const auto& cms = *reg.find("", "v1", "configmaps");
  ASSERT_TRUE(store.create(ns, "", json::object{{"metadata", json::object{{"name", "x"}}}}));
  int64_t start = store.resource_version();
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store.create(cms, "x", json::object{{"metadata", json::object{{"name", "c" + std::to_string(i)}}}}));
  }
  std::vector<std::string> seen;
  testcluster::WatchSpec spec{"x", {}, {}, store.resource_version() - 2, [&](const testcluster::StoreEvent& e) {
                                seen.push_back(e.type + ":" + std::string(kube::name_of(e.object)));
                              }};
  ASSERT_TRUE(store.watch(cms, spec));
  EXPECT_EQ(seen, (std::vector<std::string>{"ADDED:c3", "ADDED:c4"}));
  testcluster::WatchSpec old{"x", {}, {}, start, [](const testcluster::StoreEvent&) {}};
  auto gone = store.watch(cms, old);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().http_status, 410);
}

TEST(SimApi, InformerFollowsTheClusterAcrossWatchDisconnects) {
  TestCluster tc(kScenario);
  auto c = tc.client();
  auto inf = kube::Informer::start(c, kube::resources::kConfigMaps, "prod");
  ASSERT_TRUE(inf->wait_synced(std::chrono::steady_clock::now() + 10s));
  ASSERT_TRUE(c->create(kube::resources::kConfigMaps, "prod", json::object{{"metadata", json::object{{"name", "one"}}}}));
  ASSERT_TRUE(inf->wait_for("prod/one", [](const json::object* o) { return o != nullptr; }, std::chrono::steady_clock::now() + 10s));
  auto fault = tc.add_fault(R"({"type":"watch-disconnect","resource":"configmaps"})");
  EXPECT_GE(kube::int_at(fault, {"disconnected"}).value_or(0), 1);
  ASSERT_TRUE(c->create(kube::resources::kConfigMaps, "prod", json::object{{"metadata", json::object{{"name", "two"}}}}));
  ASSERT_TRUE(inf->wait_for("prod/two", [](const json::object* o) { return o != nullptr; }, std::chrono::steady_clock::now() + 10s));
  EXPECT_GE(inf->stats().watches, 2u);
}

TEST(SimApi, ExecRunsRealShellsScriptsAndChecksContainers) {
  TestCluster tc(kScenario);
  auto shell = tc.exec("prod", "app", "main", {"sh", "-c", "echo out; echo err >&2; pwd; exit 4"});
  ASSERT_TRUE(shell.status) << shell.status.error().describe();
  EXPECT_EQ(shell.exit_code, 4);
  EXPECT_THAT(shell.out, HasSubstr("out\n"));
  EXPECT_THAT(shell.out, HasSubstr("/root\n")) << "the container's working directory, in its own view (exec_sandbox.h)";
  EXPECT_EQ(shell.err, "err\n");
  auto scripted = tc.exec("prod", "app", "main", {"sh", "-c", "mysql -e flush-tables"});
  EXPECT_EQ(scripted.exit_code, 0);
  EXPECT_EQ(scripted.out, "flushed\n");
  auto broken = tc.exec("prod", "app", "sidecar", {"broken"});
  EXPECT_EQ(broken.exit_code, 7);
  auto no_container = tc.exec("prod", "app", "", {"true"});
  ASSERT_FALSE(no_container.status);
  EXPECT_THAT(no_container.status.error().message, HasSubstr("a container name must be specified for pod app"));
  auto wrong = tc.exec("prod", "app", "nope", {"true"});
  ASSERT_FALSE(wrong.status);
  EXPECT_THAT(wrong.status.error().message, HasSubstr("container nope is not valid for pod app"));
  auto missing_binary = tc.exec("prod", "app", "main", {"/no/such/binary"});
  ASSERT_FALSE(missing_binary.status);
  EXPECT_THAT(missing_binary.status.error().message, HasSubstr("executable file not found"));
}

TEST(SimApi, ExecStdinAndKillOnDisconnect) {
  TestCluster tc(kScenario);
  kube::ExecRequest r;
  r.ns = "prod";
  r.pod = "app";
  r.container = "main";
  r.command = {"cat"};
  r.stdin = true;
  auto s = kube::start_exec(tc.client(), r);
  s->write_stdin("round trip");
  s->close_stdin();
  auto res = s->wait();
  ASSERT_TRUE(res.status) << res.status.error().describe();
  EXPECT_EQ(res.out, "round trip");
  EXPECT_EQ(res.exit_code, 0);
}

TEST(SimApi, RbacLiteForbidsWithTheRealMessage) {
  TestCluster tc(kScenario);
  auto reader = kube::Client::create(with_token(tc, "reader-token"));
  ASSERT_TRUE(reader);
  EXPECT_TRUE((*reader)->list(kube::resources::kPods, "prod"));
  auto denied = (*reader)->create(kube::resources::kConfigMaps, "prod", json::object{{"metadata", json::object{{"name", "x"}}}});
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.error().code, Errc::kForbidden);
  EXPECT_THAT(denied.error().message,
              HasSubstr("User \"system:serviceaccount:kvbackup:reader\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"prod\""));
  kube::ExecRequest er;
  er.ns = "prod";
  er.pod = "app";
  er.container = "main";
  er.command = {"true"};
  auto exec = kube::exec(*reader, er);
  ASSERT_FALSE(exec.status);
  EXPECT_EQ(exec.status.error().code, Errc::kForbidden);
  EXPECT_THAT(exec.status.error().message, HasSubstr("cannot get resource \"pods/exec\""));
  auto stranger = kube::Client::create(with_token(tc, "wrong-token"));
  auto unauth = (*stranger)->list(kube::resources::kPods, "prod");
  ASSERT_FALSE(unauth);
  EXPECT_EQ(unauth.error().code, Errc::kUnauthorized);
}

TEST(SimApi, InjectedApiErrorsLatencyAndThrottling) {
  TestCluster tc(kScenario);
  auto c = tc.client();
  tc.add_fault(R"({"type":"api-error","verb":"get","resource":"pods","name":"app","code":500,"count":2})");
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(c->get(kube::resources::kPods, "prod", "app")) << "two 500s, retried";
  tc.add_fault(R"({"type":"api-error","verb":"list","resource":"pods","code":429,"retryAfter":1,"count":1})");
  start = std::chrono::steady_clock::now();
  ASSERT_TRUE(c->list(kube::resources::kPods, "prod"));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 1s) << "Retry-After honoured";
  tc.add_fault(R"({"type":"latency","verb":"get","resource":"configmaps","delay":"300ms","count":1})");
  start = std::chrono::steady_clock::now();
  auto slow = c->get(kube::resources::kConfigMaps, "prod", "nothing");
  EXPECT_FALSE(slow);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms);
  kube::CallOptions once;
  once.retry = false;
  tc.add_fault(R"({"type":"api-error","verb":"create","resource":"configmaps","code":503,"message":"etcd leader changed"})");
  auto failed = c->create(kube::resources::kConfigMaps, "prod", json::object{{"metadata", json::object{{"name", "x"}}}}, once);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, Errc::kServiceUnavailable);
  EXPECT_THAT(failed.error().message, HasSubstr("etcd leader changed"));
  kube::HttpRequest bad;
  bad.method = "POST";
  bad.target = "/testcluster/v1/faults";
  bad.body = R"({"type":"meteor-strike"})";
  auto rejected = c->request(bad);
  ASSERT_FALSE(rejected);
  EXPECT_THAT(rejected.error().message, HasSubstr("meteor-strike"));
}

TEST(SimApi, DiscoveryDescribesTheResources) {
  TestCluster tc(kScenario);
  kube::HttpRequest req;
  req.target = "/apis/kubevirt.io/v1";
  auto r = tc.client()->request(req);
  ASSERT_TRUE(r);
  auto doc = json::parse(r->body);
  bool vm = false;
  for (const auto& res : doc.at("resources").as_array()) {
    if (kube::str_at(res, {"name"}) == "virtualmachines") {
      vm = true;
      EXPECT_EQ(kube::str_at(res, {"kind"}), "VirtualMachine");
      EXPECT_EQ(json::serialize(res.at("shortNames")), R"(["vm","vms"])");
    }
  }
  EXPECT_TRUE(vm);
  auto version = tc.client()->server_version();
  ASSERT_TRUE(version);
  EXPECT_GE(version->minor, 30) << "keeps kubectl on WebSocket exec";
}

}  // namespace
}  // namespace kvb::testing
