#include "kube/api_status.h"
#include "kube/object.h"
#include "kube/watch.h"
#include "tests/support/test_api_server.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <atomic>

namespace kvb::kube {
namespace {

namespace json = boost::json;
using testing::TestApiServer;
using testcluster::ResponseStream;
using namespace std::chrono_literals;

json::object snapshot(const std::string& name, int rv, bool cut) {
  json::object o{{"apiVersion", "snapshot.storage.k8s.io/v1"},
                 {"kind", "VolumeSnapshot"},
                 {"metadata", json::object{{"name", name}, {"namespace", "prod"}, {"resourceVersion", std::to_string(rv)}}}};
  if (cut) o["status"] = json::object{{"creationTime", "2026-11-25T17:08:00Z"}};
  return o;
}

std::string event(const std::string& type, const json::object& obj) {
  return json::serialize(json::object{{"type", type}, {"object", obj}}) + "\n";
}

// A scripted watch endpoint: lists return `items` at `list_rv`; each watch request
// hands its stream to the test through `streams`.
struct FakeApi {
  std::mutex mu;
  std::vector<json::object> items;
  int list_rv = 10;
  int lists = 0;
  std::vector<std::string> watch_targets;
  std::vector<std::shared_ptr<ResponseStream>> streams;
  std::condition_variable cv;
  bool forbid = false;

  void install(TestApiServer& server) {
    server.set_handler([this](testing::ServerRequest&& req, std::shared_ptr<testing::Responder> r) {
      std::lock_guard lock(mu);
      if (forbid) {
        r->respond(TestApiServer::json(403, status_json(403, "Forbidden", "volumesnapshots is forbidden")));
        return;
      }
      if (req.query_param("watch") == "1") {
        watch_targets.push_back(req.target);
        streams.push_back(r->stream(200, {}));
      } else {
        ++lists;
        json::array arr;
        for (auto& i : items) arr.push_back(i);
        r->respond(TestApiServer::json(
            200, json::serialize(json::object{{"kind", "VolumeSnapshotList"},
                                              {"metadata", json::object{{"resourceVersion", std::to_string(list_rv)}}},
                                              {"items", arr}})));
      }
      cv.notify_all();
    });
  }

  std::shared_ptr<ResponseStream> wait_stream(size_t n) {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return streams.size() >= n; });
    return streams[n - 1];
  }
};

std::shared_ptr<Client> client_for(const TestApiServer& s) {
  auto c = Client::create(s.rest_config());
  if (!c) throw std::runtime_error(c.error().describe());
  return *c;
}

auto has_cut = [](const json::object* o) { return o && !str_at(json::value(*o), {"status", "creationTime"}).empty(); };

TEST(Watch, ParsesEvents) {
  auto e = parse_watch_event(R"({"type":"MODIFIED","object":{"metadata":{"name":"a"}}})");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->type, WatchEventType::kModified);
  EXPECT_FALSE(parse_watch_event(R"({"type":"WHATEVER","object":{}})"));
  EXPECT_FALSE(parse_watch_event(R"({"type":"ADDED"})"));
  EXPECT_FALSE(parse_watch_event("{"));
}

TEST(Informer, ListsThenFollowsEventsAndWakesWaiters) {
  TestApiServer server;
  FakeApi api;
  api.items = {snapshot("db-rootdisk", 5, false)};
  api.install(server);
  auto client = client_for(server);
  auto inf = Informer::start(client, resources::kVolumeSnapshots, "prod",
                             InformerOptions{"kvbackup.io/backup=nightly", "", 300s, {}});
  ASSERT_TRUE(inf->wait_synced(std::chrono::steady_clock::now() + 10s));
  EXPECT_TRUE(inf->get("prod/db-rootdisk"));
  auto stream = api.wait_stream(1);
  EXPECT_NE(api.watch_targets[0].find("resourceVersion=10"), std::string::npos) << api.watch_targets[0];
  EXPECT_NE(api.watch_targets[0].find("labelSelector=kvbackup.io%2Fbackup%3Dnightly"), std::string::npos);
  EXPECT_NE(api.watch_targets[0].find("allowWatchBookmarks=true"), std::string::npos);

  std::thread pusher([&] {
    server.loop().run_sync([&] {
      stream->write(event("ADDED", snapshot("db-data", 11, false)));
      stream->write(event("MODIFIED", snapshot("db-rootdisk", 12, true)));
    });
  });
  auto got = inf->wait_for("prod/db-rootdisk", has_cut, std::chrono::steady_clock::now() + 10s);
  pusher.join();
  ASSERT_TRUE(got) << got.error().describe();
  EXPECT_EQ(resource_version_of(json::value(*got)), "12");
  auto status = inf->wait_until([](const ObjectCache& c) { return c.size() == 2; }, std::chrono::steady_clock::now() + 10s);
  EXPECT_TRUE(status);
  server.loop().run_sync([&] { stream->write(event("DELETED", snapshot("db-data", 13, false))); });
  EXPECT_TRUE(inf->wait_for("prod/db-data", [](const json::object* o) { return o == nullptr; },
                            std::chrono::steady_clock::now() + 10s));
  inf->stop();
}

TEST(Informer, ResumesFromTheLastResourceVersionAfterADisconnect) {
  TestApiServer server;
  FakeApi api;
  api.install(server);
  auto client = client_for(server);
  auto inf = Informer::start(client, resources::kVolumeSnapshots, "prod");
  auto first = api.wait_stream(1);
  server.loop().run_sync([&] {
    first->write(event("ADDED", snapshot("a", 20, false)));
    first->write(event("BOOKMARK", json::object{{"metadata", json::object{{"resourceVersion", "25"}}}}));
  });
  ASSERT_TRUE(inf->wait_for("prod/a", [](const json::object* o) { return o != nullptr; },
                            std::chrono::steady_clock::now() + 10s));
  // The bookmark is applied in order after "a"; wait for the stream to have been read.
  server.loop().run_sync([&] { first->abort(); });
  auto second = api.wait_stream(2);
  {
    std::lock_guard lock(api.mu);
    EXPECT_NE(api.watch_targets[1].find("resourceVersion=25"), std::string::npos) << api.watch_targets[1];
    EXPECT_EQ(api.lists, 1) << "a disconnect resumes the watch, it does not re-list";
  }
  server.loop().run_sync([&] { second->write(event("MODIFIED", snapshot("a", 26, true))); });
  EXPECT_TRUE(inf->wait_for("prod/a", has_cut, std::chrono::steady_clock::now() + 10s));
  EXPECT_GE(inf->stats().disconnects, 1u);
}

TEST(Informer, GoneMeansReList) {
  TestApiServer server;
  FakeApi api;
  api.items = {snapshot("old", 3, false)};
  api.install(server);
  auto client = client_for(server);
  auto inf = Informer::start(client, resources::kVolumeSnapshots, "prod");
  auto first = api.wait_stream(1);
  ASSERT_TRUE(inf->get("prod/old"));
  {
    std::lock_guard lock(api.mu);
    api.items = {snapshot("new", 40, true)};
    api.list_rv = 40;
  }
  server.loop().run_sync([&] {
    first->write(event("ERROR", json::parse(status_json(410, "Expired", "too old resource version: 10 (30)")).as_object()));
  });
  auto second = api.wait_stream(2);
  EXPECT_TRUE(inf->wait_for("prod/new", has_cut, std::chrono::steady_clock::now() + 10s));
  EXPECT_FALSE(inf->get("prod/old")) << "objects that vanished during the gap are dropped";
  std::lock_guard lock(api.mu);
  EXPECT_EQ(api.lists, 2);
  EXPECT_NE(api.watch_targets[1].find("resourceVersion=40"), std::string::npos);
  (void)second;
}

TEST(Informer, WaitKeysSeesItsKeysAndStops) {
  TestApiServer server;
  FakeApi api;
  api.items = {snapshot("a", 5, false), snapshot("b", 6, false)};
  api.install(server);
  auto client = client_for(server);
  auto inf = Informer::start(client, resources::kVolumeSnapshots, "prod");
  ASSERT_TRUE(inf->wait_synced(std::chrono::steady_clock::now() + 10s));
  auto stream = api.wait_stream(1);
  auto both_cut = [](const ObjectCache& c) {
    for (const char* k : {"prod/a", "prod/b"}) {
      auto it = c.find(k);
      if (it == c.end() || str_at(it->second, {"status", "creationTime"}).empty()) return false;
    }
    return true;
  };
  std::thread pusher([&] {
    server.loop().run_sync([&] {
      stream->write(event("ADDED", snapshot("other", 11, true)));
      stream->write(event("MODIFIED", snapshot("a", 12, true)));
      stream->write(event("MODIFIED", snapshot("b", 13, true)));
    });
  });
  EXPECT_TRUE(inf->wait_keys({"prod/a", "prod/b"}, both_cut, std::chrono::steady_clock::now() + 10s));
  pusher.join();
  // A change of another key alone does not satisfy it: the wait times out.
  auto only_other = [](const ObjectCache& c) { return c.count("prod/c") > 0; };
  auto start = std::chrono::steady_clock::now();
  auto r = inf->wait_keys({"prod/c"}, only_other, start + 300ms);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kTimeout);
  // Stopping the informer wakes key waiters with its error.
  std::thread stopper([&] { inf->stop(); });
  auto stopped = inf->wait_keys({"prod/c"}, only_other, std::chrono::steady_clock::now() + 60s);
  stopper.join();
  ASSERT_FALSE(stopped);
  EXPECT_EQ(stopped.error().code, Errc::kCancelled);
}

TEST(Informer, WaitTimesOutAndForbiddenIsReported) {
  TestApiServer server;
  FakeApi api;
  api.install(server);
  auto client = client_for(server);
  auto inf = Informer::start(client, resources::kVolumeSnapshots, "prod");
  auto start = std::chrono::steady_clock::now();
  auto r = inf->wait_for("prod/never", has_cut, start + 300ms);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  inf->stop();

  TestApiServer server2;
  FakeApi denied;
  denied.forbid = true;
  denied.install(server2);
  auto client2 = client_for(server2);
  auto inf2 = Informer::start(client2, resources::kVolumeSnapshots, "prod");
  auto st = inf2->wait_synced(std::chrono::steady_clock::now() + 10s);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Errc::kForbidden);
}

TEST(Informer, StopTokenCancelsAWait) {
  TestApiServer server;
  FakeApi api;
  api.install(server);
  auto client = client_for(server);
  auto inf = Informer::start(client, resources::kVolumeSnapshots, "prod");
  std::stop_source stop;
  std::thread t([&] {
    api.wait_stream(1);
    stop.request_stop();
  });
  auto r = inf->wait_for("prod/x", has_cut, std::chrono::steady_clock::now() + 60s, stop.get_token());
  t.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kCancelled);
}

TEST(Informer, WaitForObjectUsesAFieldSelector) {
  TestApiServer server;
  FakeApi api;
  api.items = {snapshot("one", 7, true)};
  api.install(server);
  auto r = wait_for_object(client_for(server), resources::kVolumeSnapshots, "prod", "one", has_cut, 10s);
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_NE(server.requests().at(0).target.find("fieldSelector=metadata.name%3Done"), std::string::npos);
}

}  // namespace
}  // namespace kvb::kube
