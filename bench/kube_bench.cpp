// Micro-benchmarks of the Kubernetes client (src/kube) against an in-process
// HTTPS server: decoding a 10,000-pod list, and exec round trips one at a time
// versus 100 at once. Prints Google Benchmark's table, then the ratios.
//
//   build/bench/kube_bench [--benchmark_filter=...]
#include "kube/exec.h"
#include "kube/exec_protocol.h"
#include "kube/client.h"
#include "tests/support/test_api_server.h"

#include <benchmark/benchmark.h>
#include <boost/json.hpp>

#include <cstdio>
#include <map>

namespace {

namespace json = boost::json;
using kvb::testing::TestApiServer;

std::string pod_list(int n) {
  json::array items;
  for (int i = 0; i < n; ++i) {
    std::string name = "virt-launcher-vm-" + std::to_string(i) + "-abcde";
    items.push_back(json::object{
        {"apiVersion", "v1"},
        {"kind", "Pod"},
        {"metadata",
         json::object{{"name", name},
                      {"namespace", "ns-" + std::to_string(i % 20)},
                      {"uid", "0b3c6a1e-4f1d-4c6f-9a0e-" + std::to_string(100000000000 + i)},
                      {"resourceVersion", std::to_string(1000 + i)},
                      {"labels", json::object{{"kubevirt.io", "virt-launcher"},
                                              {"kubevirt.io/created-by", "uid-" + std::to_string(i)},
                                              {"vm.kubevirt.io/name", "vm-" + std::to_string(i)}}},
                      {"annotations",
                       json::object{{"kubectl.kubernetes.io/default-container", "compute"},
                                    {"pre.hook.backup.velero.io/container", "compute"},
                                    {"pre.hook.backup.velero.io/command",
                                     "[\"/usr/bin/virt-freezer\", \"--freeze\", \"--name\", \"vm\", \"--namespace\", \"ns\"]"},
                                    {"post.hook.backup.velero.io/container", "compute"},
                                    {"post.hook.backup.velero.io/command",
                                     "[\"/usr/bin/virt-freezer\", \"--unfreeze\", \"--name\", \"vm\", \"--namespace\", \"ns\"]"}}}}},
        {"spec", json::object{{"containers", json::array{json::object{{"name", "compute"}, {"image", "virt-launcher:v1.8"}},
                                                         json::object{{"name", "guest-console-log"}}}}}},
        {"status", json::object{{"phase", "Running"}, {"podIP", "10.244.0." + std::to_string(i % 250)}}}});
  }
  return json::serialize(json::object{{"kind", "PodList"}, {"apiVersion", "v1"},
                                      {"metadata", json::object{{"resourceVersion", "99999"}}}, {"items", items}});
}

struct Fixture {
  TestApiServer server;
  std::string body;
  std::shared_ptr<kvb::kube::Client> client;
  std::vector<std::shared_ptr<kvb::testcluster::WebSocket>> held;

  Fixture() : body(pod_list(10000)) {
    server.set_handler([this](kvb::testing::ServerRequest&& req, std::shared_ptr<kvb::testing::Responder> r) {
      if (req.websocket) {
        kvb::testcluster::WebSocketHandlers h;
        h.on_open = [](std::shared_ptr<kvb::testcluster::WebSocket> ws) {
          ws->send(kvb::kube::encode_exec_frame(kvb::kube::ExecChannel::kStderr, R"({"msg":"Operation completed successfully"})"));
          ws->send(kvb::kube::encode_exec_frame(kvb::kube::ExecChannel::kError, kvb::kube::exec_status_json(0)));
          ws->close();
        };
        r->upgrade("v5.channel.k8s.io", h);
      } else {
        r->respond(TestApiServer::json(200, body));
      }
    });
    kvb::kube::ClientOptions o;
    o.qps = 0;  // measure the client, not the rate limiter
    client = *kvb::kube::Client::create(server.rest_config(), o);
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

kvb::kube::ExecRequest freeze_request() {
  kvb::kube::ExecRequest r;
  r.ns = "ns";
  r.pod = "virt-launcher-vm-abcde";
  r.container = "compute";
  r.command = {"/usr/bin/virt-freezer", "--freeze", "--name", "vm", "--namespace", "ns"};
  return r;
}

void BM_ParseOnly10kPods(benchmark::State& state) {
  auto& f = fixture();
  for (auto _ : state) {
    auto v = json::parse(f.body);
    benchmark::DoNotOptimize(v);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * f.body.size()));
}
BENCHMARK(BM_ParseOnly10kPods)->Unit(benchmark::kMillisecond);

void BM_ClientList10kPods(benchmark::State& state) {
  auto& f = fixture();
  kvb::kube::ListOptions lo;
  lo.page_size = 0;
  for (auto _ : state) {
    auto list = f.client->list(kvb::kube::resources::kPods, "", lo);
    if (!list || list->items.size() != 10000) state.SkipWithError("list failed");
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * f.body.size()));
}
BENCHMARK(BM_ClientList10kPods)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ExecSequential(benchmark::State& state) {
  auto& f = fixture();
  for (auto _ : state) {
    auto r = kvb::kube::exec(f.client, freeze_request());
    if (!r.succeeded()) state.SkipWithError("exec failed");
  }
}
BENCHMARK(BM_ExecSequential)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_Exec100Concurrent(benchmark::State& state) {
  auto& f = fixture();
  for (auto _ : state) {
    std::vector<std::shared_ptr<kvb::kube::ExecSession>> s;
    for (int i = 0; i < 100; ++i) s.push_back(kvb::kube::start_exec(f.client, freeze_request()));
    for (auto& x : s)
      if (!x->wait().succeeded()) state.SkipWithError("exec failed");
  }
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_Exec100Concurrent)->Unit(benchmark::kMillisecond)->UseRealTime();

class Collector : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, double> seconds;  // per iteration
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      seconds[r.benchmark_name()] = r.GetAdjustedRealTime() / benchmark::GetTimeUnitMultiplier(r.time_unit);
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  Collector collector;
  benchmark::RunSpecifiedBenchmarks(&collector);
  auto get = [&](const char* prefix) -> double {
    for (const auto& [k, v] : collector.seconds)
      if (k.rfind(prefix, 0) == 0) return v;
    return 0;
  };
  double parse = get("BM_ParseOnly10kPods"), list = get("BM_ClientList10kPods");
  double seq = get("BM_ExecSequential"), conc = get("BM_Exec100Concurrent");
  std::printf("\nRatios (same run, same machine):\n");
  if (parse > 0 && list > 0) {
    std::printf("  10,000-pod list over HTTPS vs JSON parse alone: %.2fx (%.1f ms vs %.1f ms)\n", list / parse,
                list * 1e3, parse * 1e3);
  }
  if (seq > 0 && conc > 0) {
    std::printf("  exec round trip: %.2f ms one at a time, %.3f ms each with 100 concurrent: %.1fx throughput\n",
                seq * 1e3, conc * 1e3 / 100, seq / (conc / 100));
  }
  return 0;
}
