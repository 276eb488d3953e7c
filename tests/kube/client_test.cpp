#include "kube/api_status.h"
#include "kube/client.h"
#include "kube/object.h"
#include "tests/support/test_api_server.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace kvb::kube {
namespace {

namespace json = boost::json;
using testing::TestApiServer;
using namespace std::chrono_literals;

std::shared_ptr<Client> make_client(const TestApiServer& s, ClientOptions o = {}) {
  auto c = Client::create(s.rest_config(), o);
  if (!c) throw std::runtime_error(c.error().describe());
  return *c;
}

std::string pod_json(const std::string& ns, const std::string& name) {
  return R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":")" + name + R"(","namespace":")" + ns +
         R"(","resourceVersion":"7"}})";
}

TEST(KubeClient, GetSendsTokenAndParsesObject) {
  TestApiServer server;
  server.set_handler([](testing::ServerRequest&& req, std::shared_ptr<testing::Responder> r) {
    if (req.path == "/api/v1/namespaces/prod/pods/virt-launcher-db-abcde") {
      r->respond(TestApiServer::json(200, pod_json("prod", "virt-launcher-db-abcde")));
    } else {
      r->respond(TestApiServer::json(404, status_json(404, "NotFound", "pods \"x\" not found")));
    }
  });
  auto c = make_client(server);
  auto pod = c->get(resources::kPods, "prod", "virt-launcher-db-abcde");
  ASSERT_TRUE(pod) << pod.error().describe();
  EXPECT_EQ(name_of(json::value(*pod)), "virt-launcher-db-abcde");
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].authorization, "Bearer test-token");
  EXPECT_EQ(reqs[0].method, "GET");
}

TEST(KubeClient, ApiErrorsAreTypedWithReasonAndMessage) {
  TestApiServer server;
  server.set_handler([](testing::ServerRequest&& req, std::shared_ptr<testing::Responder> r) {
    if (req.path.ends_with("/missing")) {
      r->respond(TestApiServer::json(404, status_json(404, "NotFound", "pods \"missing\" not found")));
    } else if (req.path.ends_with("/forbidden")) {
      r->respond(TestApiServer::json(
          403, status_json(403, "Forbidden",
                           "pods \"forbidden\" is forbidden: User \"x\" cannot get resource \"pods\"")));
    } else if (req.path.ends_with("/teapot")) {
      r->respond(TestApiServer::json(418, "<html>not a status</html>"));
    } else {
      r->respond(TestApiServer::json(409, status_json(409, "AlreadyExists", "already exists")));
    }
  });
  auto c = make_client(server);
  auto nf = c->get(resources::kPods, "ns", "missing");
  ASSERT_FALSE(nf);
  EXPECT_EQ(nf.error().code, Errc::kNotFound);
  EXPECT_EQ(nf.error().http_status, 404);
  EXPECT_EQ(nf.error().reason, "NotFound");
  EXPECT_NE(nf.error().message.find("pods \"missing\" not found"), std::string::npos);
  EXPECT_NE(nf.error().message.find("/api/v1/namespaces/ns/pods/missing"), std::string::npos) << nf.error().message;

  auto fb = c->get(resources::kPods, "ns", "forbidden");
  ASSERT_FALSE(fb);
  EXPECT_EQ(fb.error().code, Errc::kForbidden);
  EXPECT_NE(fb.error().message.find("cannot get resource"), std::string::npos);

  auto tp = c->get(resources::kPods, "ns", "teapot");
  ASSERT_FALSE(tp);
  EXPECT_EQ(tp.error().http_status, 418);
  EXPECT_NE(tp.error().message.find("not a status"), std::string::npos);

  json::object obj{{"metadata", json::object{{"name", "x"}}}};
  auto ae = c->create(resources::kPods, "ns", obj);
  ASSERT_FALSE(ae);
  EXPECT_EQ(ae.error().code, Errc::kAlreadyExists);
}

TEST(KubeClient, ListFollowsContinueTokensAndSendsSelectors) {
  TestApiServer server;
  server.set_handler([](testing::ServerRequest&& req, std::shared_ptr<testing::Responder> r) {
    std::string cont = req.query_param("continue");
    int page = cont.empty() ? 0 : std::stoi(cont);
    json::array items;
    for (int i = 0; i < 2; ++i) {
      items.push_back(json::parse(pod_json("ns", "pod-" + std::to_string(page * 2 + i))));
    }
    json::object meta{{"resourceVersion", "100"}};
    if (page < 2) meta["continue"] = std::to_string(page + 1);
    r->respond(TestApiServer::json(
        200, json::serialize(json::object{{"kind", "PodList"}, {"metadata", meta}, {"items", items}})));
  });
  auto c = make_client(server);
  ListOptions lo;
  lo.label_selector = "kubevirt.io=virt-launcher,vm.kubevirt.io/name in (a,b)";
  lo.field_selector = "status.phase=Running";
  lo.page_size = 2;
  auto list = c->list(resources::kPods, "ns", lo);
  ASSERT_TRUE(list) << list.error().describe();
  EXPECT_EQ(list->items.size(), 6u);
  EXPECT_EQ(list->pages, 3);
  EXPECT_EQ(list->resource_version, "100");
  EXPECT_EQ(name_of(list->items[5]), "pod-5");
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_NE(reqs[0].target.find("labelSelector=kubevirt.io%3Dvirt-launcher%2Cvm.kubevirt.io%2Fname%20in%20%28a%2Cb%29"),
            std::string::npos)
      << reqs[0].target;
  EXPECT_NE(reqs[0].target.find("fieldSelector=status.phase%3DRunning"), std::string::npos);
  EXPECT_NE(reqs[0].target.find("limit=2"), std::string::npos);
  EXPECT_NE(reqs[2].target.find("continue=2"), std::string::npos);
  for (const auto& rq : reqs) EXPECT_EQ(rq.path, "/api/v1/namespaces/ns/pods");

  lo.all_pages = false;
  auto one = c->list(resources::kPods, "", lo);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->items.size(), 2u);
  EXPECT_EQ(one->continue_token, "1");
  EXPECT_EQ(server.requests().back().path, "/api/v1/pods");
}

TEST(KubeClient, CreateUpdatePatchDeleteSubresourceWireFormat) {
  TestApiServer server;
  server.set_handler([](testing::ServerRequest&& req, std::shared_ptr<testing::Responder> r) {
    if (req.method == "PUT" && req.path.ends_with("/stale")) {
      r->respond(TestApiServer::json(409, status_json(409, "Conflict",
                                                      "Operation cannot be fulfilled: the object has been modified")));
      return;
    }
    if (req.path.ends_with("/freeze") || req.path.ends_with("/unfreeze")) {
      r->respond(TestApiServer::json(200, ""));
      return;
    }
    // Echo the body back as the object.
    bool object = !req.body.empty() && req.body[0] == '{';
    r->respond(TestApiServer::json(200, object ? req.body : pod_json("ns", "x")));
  });
  auto c = make_client(server);
  json::object snap{{"apiVersion", "snapshot.storage.k8s.io/v1"},
                    {"kind", "VolumeSnapshot"},
                    {"metadata", json::object{{"name", "db-rootdisk"}}},
                    {"spec", json::object{{"source", json::object{{"persistentVolumeClaimName", "db-rootdisk"}}}}}};
  auto created = c->create(resources::kVolumeSnapshots, "prod", snap);
  ASSERT_TRUE(created) << created.error().describe();

  json::object stale{{"metadata", json::object{{"name", "stale"}, {"resourceVersion", "1"}}}};
  auto upd = c->update(resources::kPods, "prod", stale);
  ASSERT_FALSE(upd);
  EXPECT_EQ(upd.error().code, Errc::kConflict);

  ASSERT_TRUE(c->patch(resources::kPods, "prod", "p", PatchType::kMerge,
                       json::parse(R"({"metadata":{"labels":{"a":"b"}}})")));
  ASSERT_TRUE(c->patch(resources::kPods, "prod", "p", PatchType::kJson,
                       json::parse(R"([{"op":"add","path":"/metadata/labels/x","value":"y"}])")));
  ASSERT_TRUE(c->patch(resources::kPods, "prod", "p", PatchType::kMerge, json::parse(R"({"status":{}})"), {},
                       "status"));
  DeleteOptions d;
  d.propagation_policy = "Foreground";
  auto removed = c->remove(resources::kVolumeSnapshots, "prod", "db-rootdisk", d);
  ASSERT_TRUE(removed) << removed.error().describe();
  ResourceRef vmi{"subresources.kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance", true};
  auto fr = c->subresource("PUT", vmi, "prod", "db", "freeze", json::parse(R"({"unfreezeTimeout":"5m0s"})"));
  ASSERT_TRUE(fr) << fr.error().describe();
  EXPECT_TRUE(fr->is_null());
  ResourceRef nodes{"", "v1", "nodes", "Node", false};
  ASSERT_TRUE(c->get(nodes, "ignored", "node-1"));

  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 8u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].path, "/apis/snapshot.storage.k8s.io/v1/namespaces/prod/volumesnapshots");
  EXPECT_EQ(reqs[0].content_type, "application/json");
  EXPECT_EQ(json::parse(reqs[0].body), json::value(snap));
  EXPECT_EQ(reqs[1].method, "PUT");
  EXPECT_EQ(reqs[1].path, "/api/v1/namespaces/prod/pods/stale");
  EXPECT_EQ(reqs[2].content_type, "application/merge-patch+json");
  EXPECT_EQ(reqs[3].content_type, "application/json-patch+json");
  EXPECT_EQ(reqs[4].path, "/api/v1/namespaces/prod/pods/p/status");
  EXPECT_EQ(reqs[5].method, "DELETE");
  EXPECT_EQ(json::parse(reqs[5].body).at("propagationPolicy"), "Foreground");
  EXPECT_EQ(reqs[6].method, "PUT");
  EXPECT_EQ(reqs[6].path, "/apis/subresources.kubevirt.io/v1/namespaces/prod/virtualmachineinstances/db/freeze");
  EXPECT_EQ(json::parse(reqs[6].body).at("unfreezeTimeout"), "5m0s");
  EXPECT_EQ(reqs[7].path, "/api/v1/nodes/node-1");
}

TEST(KubeClient, NamesArePathEscaped) {
  TestApiServer server;
  server.set_handler([](testing::ServerRequest&& req, std::shared_ptr<testing::Responder> r) {
    r->respond(TestApiServer::json(200, pod_json("ns", req.path)));
  });
  auto c = make_client(server);
  ASSERT_TRUE(c->get(resources::kPods, "ns", "a/../../b c"));
  EXPECT_EQ(server.requests()[0].target, "/api/v1/namespaces/ns/pods/a%2F..%2F..%2Fb%20c");
}

TEST(KubeClient, KeepAliveReusesOneConnection) {
  TestApiServer server;
  server.set_handler([](testing::ServerRequest&&, std::shared_ptr<testing::Responder> r) {
    r->respond(TestApiServer::json(200, pod_json("ns", "p")));
  });
  auto c = make_client(server);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(c->get(resources::kPods, "ns", "p"));
  EXPECT_EQ(server.connections(), 1u);
  std::set<uint64_t> ids;
  for (const auto& r : server.requests()) ids.insert(r.connection_id);
  EXPECT_EQ(ids.size(), 1u);
}

TEST(KubeClient, ManyThreadsShareTheClient) {
  TestApiServer server;
  server.set_handler([&server](testing::ServerRequest&& req, std::shared_ptr<testing::Responder> r) {
    // Answer after a short delay so that calls overlap.
    server.loop().after(5ms, [r, name = req.path] { r->respond(TestApiServer::json(200, pod_json("ns", name))); });
  });
  auto c = make_client(server);
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        auto name = "p-" + std::to_string(t) + "-" + std::to_string(i);
        auto r = c->get(resources::kPods, "ns", name);
        if (r && name_of(json::value(*r)).ends_with(name)) ++good;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), 160);
}

TEST(KubeClient, ServerClosingMidResponseIsAnErrorNotAHang) {
  TestApiServer server;
  server.set_handler([](testing::ServerRequest&&, std::shared_ptr<testing::Responder> r) {
    r->respond_truncated(TestApiServer::json(200, pod_json("ns", "p") + std::string(1000, ' ')), 20);
  });
  auto c = make_client(server);
  CallOptions o;
  o.retry = false;
  auto r = c->get(resources::kPods, "ns", "p", o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kTransport);
  EXPECT_NE(r.error().message.find("closed mid-response"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("127.0.0.1:" + std::to_string(server.port())), std::string::npos);
}

TEST(KubeClient, ServerThatNeverAnswersTimesOut) {
  TestApiServer server;
  std::vector<std::shared_ptr<testing::Responder>> held;
  server.set_handler([&held](testing::ServerRequest&&, std::shared_ptr<testing::Responder> r) { held.push_back(r); });
  auto c = make_client(server);
  CallOptions o;
  o.timeout = 300ms;
  o.retry = false;
  auto start = std::chrono::steady_clock::now();
  auto r = c->get(resources::kPods, "ns", "p", o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  server.loop().run_sync([&] { held.clear(); });
}

TEST(KubeClient, StopTokenCancelsAPendingCall) {
  TestApiServer server;
  std::vector<std::shared_ptr<testing::Responder>> held;
  std::atomic<bool> arrived{false};
  server.set_handler([&](testing::ServerRequest&&, std::shared_ptr<testing::Responder> r) {
    held.push_back(r);
    arrived = true;
    arrived.notify_all();
  });
  auto c = make_client(server);
  std::stop_source stop;
  CallOptions o;
  o.stop = stop.get_token();
  std::thread canceller([&] {
    arrived.wait(false);
    stop.request_stop();
  });
  auto r = c->get(resources::kPods, "ns", "p", o);
  canceller.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kCancelled);
  server.loop().run_sync([&] { held.clear(); });
}

TEST(KubeClient, ConnectionRefusedNamesTheHost) {
  testing::TestApiServer server;
  auto rc = server.rest_config();
  rc.cluster.server = "https://127.0.0.1:1";
  auto c = Client::create(rc);
  ASSERT_TRUE(c);
  CallOptions o;
  o.retry = false;
  auto r = (*c)->get(resources::kPods, "ns", "p", o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kTransport);
  EXPECT_NE(r.error().message.find("127.0.0.1:1"), std::string::npos) << r.error().message;
}

TEST(KubeClient, ServerVersion) {
  TestApiServer server;
  server.set_handler([](testing::ServerRequest&&, std::shared_ptr<testing::Responder> r) {
    r->respond(TestApiServer::json(200, R"({"major":"1","minor":"31+","gitVersion":"v1.31.2"})"));
  });
  auto v = make_client(server)->server_version();
  ASSERT_TRUE(v);
  EXPECT_EQ(v->major, 1);
  EXPECT_EQ(v->minor, 31);
  EXPECT_EQ(v->git_version, "v1.31.2");
}

}  // namespace
}  // namespace kvb::kube
