// The backup's cost to guests and to the API server, at 1 VM and at 500 VMs
// (--concurrency 50), on the test cluster with a 200 ms snapshot cut latency,
// against a naive sequential baseline measured in the same run (freeze,
// snapshot, poll every second, thaw, one VM at a time). Prints the numbers,
// then the ratios and the checks of docs/backup.md's performance claims.
//
//   build/bench/backup_bench [--vms 500] [--concurrency 50] [--baseline-vms 10] [--namespaces 1]
//                            [--cut-latency-ms 200] [--lane-pairs 1]
//   build/bench/backup_bench --vms 2000 --namespaces 20 --concurrency 100   (the scale run)
//
// --lane-pairs N runs the fleet N times with and N times without the
// priority lane (backup/freeze_gate.h; KVB_BENCH_PRIORITY_LANE=0 in kvbackup's
// environment), alternating which goes first, and prints the medians as a
// ratio. KVB_BENCH_KVBACKUP_CPUS=<taskset list> pins kvbackup to those CPUs
// (pin the bench itself with `taskset -c <others>`), so the tail that is
// kvbackup's is separated from the test cluster's. KVB_BENCH_KEEP_RECORDS=<dir>
// keeps each run's backup record (JSON) there, for a closer look per VM.
//
// "peak RSS" is wait4's ru_maxrss, which on Linux also counts the forked copy
// of this process before exec: once this process is larger than kvbackup (a
// test cluster of 2,000 VMs), the figure is this process's. "kvbackup's own
// VmHWM" is kvbackup's: its /proc status, sampled every 20 ms while it runs.
// After each run the test cluster's own figures (GET /testcluster/v1/stats)
// are printed: its loop thread's CPU, timer lateness, the cuts' parts and the
// requests that held the loop longest.
//
// kvbackup runs as the real binary (build/kvbackup) in a child process, so its
// peak RSS is its own; the test cluster runs in this process.
#include "common/subprocess.h"
#include "common/time.h"
#include "kube/exec.h"
#include "kube/object.h"
#include "kube/resource.h"
#include "tests/support/test_cluster.h"

#include <boost/json.hpp>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <thread>

namespace {
namespace json = boost::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

double kCutLatencyMs = 200;  // --cut-latency-ms

std::string scenario(int vms, int namespaces) {
  std::string out = R"(
kubevirtVersion: "1.8"
snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: )" +
                    std::to_string(static_cast<int>(kCutLatencyMs)) + R"(ms, readyLatency: 300ms}]
storageClasses: [{name: fast, provisioner: csi.example.com}]
namespaces:
)";
  for (int n = 0; n < namespaces; ++n) {
    int count = vms / namespaces + (n < vms % namespaces ? 1 : 0);
    std::string ns = namespaces == 1 ? "prod" : "prod-" + std::to_string(n);
    out += "  - name: " + ns + "\n    vms:\n      - {name: vm, count: " + std::to_string(count) +
           ", volumes: [{name: root, type: dataVolume, storageClass: fast}]}\n";
  }
  return out;
}

std::string build_dir() {
  const char* b = std::getenv("KVB_BUILD_DIR");
  return b ? b : KVB_DEFAULT_BUILD_DIR;
}

double ms_between(std::string_view a, std::string_view b) {
  auto ta = kvb::parse_rfc3339(a), tb = kvb::parse_rfc3339(b);
  if (!ta || !tb) return NAN;
  return std::chrono::duration<double, std::milli>(*tb - *ta).count();
}

uint64_t requests(kvb::testing::TestCluster& tc) { return tc.stats().at("requests").to_number<uint64_t>(); }

struct Run {
  double wall_ms = 0;
  double max_window_ms = 0;
  double p50_window_ms = 0;
  double p99_window_ms = 0;
  double per_vm_path_ms = 0;  // freeze requested .. last volume ready, the VM's critical path
  long peak_rss_kb = 0;      // wait4's ru_maxrss (counts this process, forked, too)
  long own_peak_rss_kb = 0;  // kvbackup's VmHWM, sampled
  double cpu_ms = 0;  // kvbackup's user + system CPU time
  uint64_t requests = 0;
  int vms = 0;
  int fsc = 0;
  // Where the freeze window goes, per VM (max over VMs): frozen .. last cut,
  // last cut .. thaw requested (the watch), thaw requested .. thawed (the exec).
  double to_cut_ms = 0, cut_to_thaw_ms = 0, thaw_ms = 0;
  // cut..thaw asked split: last cut .. the hold check answered (the watch
  // event and the guestosinfo GET), hold check .. thaw asked.
  double cut_to_held_ms = 0, held_to_thaw_ms = 0;
  // The test cluster's side (GET /testcluster/v1/stats): its loop thread's
  // CPU during the run, and its timer-lateness / cut / per-request figures.
  double loop_cpu_ms = 0;
  json::object tc_stats;
};

// `lane`: KVB_BENCH_PRIORITY_LANE for the child ("0": without the priority
// lane of backup/freeze_gate.h; empty: kvbackup's default).
Run run_kvbackup(kvb::testing::TestCluster& tc, const std::string& name, int concurrency, bool all_namespaces,
                 const std::string& lane = "") {
  Run out;
  uint64_t before = requests(tc);
  double loop_cpu_before = tc.stats().at("loop").at("cpuMs").to_number<double>();
  auto loc = tc.dir() / ("loc-" + name);
  std::vector<std::string> argv = {build_dir() + "/kvbackup", "--kubeconfig", tc.kubeconfig().string(), "backup", "create", name};
  if (all_namespaces) {
    argv.push_back("-A");
  } else {
    argv.insert(argv.end(), {"-n", "prod"});
  }
  argv.insert(argv.end(), {"--location", loc.string(), "--concurrency", std::to_string(concurrency), "-o", "json"});
  if (const char* extra = std::getenv("KVB_BENCH_QPS")) argv.insert(argv.begin() + 1, {"--qps", extra});
  // kvbackup on other cores than the test cluster (taskset's CPU list), to
  // separate kvbackup's share of the freeze-window tail from the simulator's.
  if (const char* cpus = std::getenv("KVB_BENCH_KVBACKUP_CPUS")) argv.insert(argv.begin(), {"/usr/bin/taskset", "-c", cpus});
  kvb::EnvVars env;
  if (!lane.empty()) env.emplace_back("KVB_BENCH_PRIORITY_LANE", lane);
  auto child = kvb::spawn_process(argv, kvb::environment_with(env), {});
  if (!child) throw std::runtime_error(child.error().message);
  ::close(child->stdin_fd);
  // Drain stderr on a thread so the child never blocks on a full pipe.
  std::thread drain([fd = child->stderr_fd] {
    char buf[4096];
    while (::read(fd, buf, sizeof buf) > 0) {
    }
  });
  // kvbackup's own peak RSS: VmHWM of its (post-exec) address space, read
  // every 20 ms while it runs (the mark only grows; wait4's ru_maxrss also
  // counts this process as forked before the exec).
  std::atomic<bool> exited{false};
  std::atomic<long> hwm_kb{0};
  std::thread hwm([pid = child->pid, &exited, &hwm_kb] {
    auto path = "/proc/" + std::to_string(pid) + "/status";
    while (!exited) {
      if (FILE* f = std::fopen(path.c_str(), "r")) {
        char line[256];
        bool is_kvbackup = false;
        long kb = -1;
        while (std::fgets(line, sizeof line, f)) {
          if (std::strncmp(line, "Name:", 5) == 0) is_kvbackup = std::strstr(line, "kvbackup") != nullptr;
          if (std::strncmp(line, "VmHWM:", 6) == 0) kb = std::atol(line + 6);
        }
        std::fclose(f);
        if (is_kvbackup && kb > hwm_kb) hwm_kb = kb;
      }
      std::this_thread::sleep_for(20ms);  // a sampling period, not synchronisation
    }
  });
  std::string text;
  char buf[65536];
  for (ssize_t n; (n = ::read(child->stdout_fd, buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
  int status = 0;
  struct rusage ru {};
  ::wait4(child->pid, &status, 0, &ru);
  exited = true;
  hwm.join();
  out.own_peak_rss_kb = hwm_kb;
  drain.join();
  ::close(child->stdout_fd);
  ::close(child->stderr_fd);
  out.peak_rss_kb = ru.ru_maxrss;
  out.cpu_ms = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
  out.requests = requests(tc) - before;
  out.tc_stats = tc.stats();
  out.loop_cpu_ms = out.tc_stats.at("loop").at("cpuMs").to_number<double>() - loop_cpu_before;
  if (const char* keep = std::getenv("KVB_BENCH_KEEP_RECORDS")) {  // a folder: each run's JSON record, for a closer look
    static int n = 0;
    std::string path = std::string(keep) + "/" + name + "-" + std::to_string(n++) + (lane == "0" ? "-nolane" : "-lane") + ".json";
    if (FILE* f = std::fopen(path.c_str(), "w")) {
      std::fwrite(text.data(), 1, text.size(), f);
      std::fclose(f);
    }
  }
  auto rec = json::parse(text).as_object();
  out.wall_ms = ms_between(rec.at("startedAt").as_string(), rec.at("finishedAt").as_string());
  std::vector<double> windows;
  for (const auto& v : rec.at("vms").as_array()) {
    ++out.vms;
    if (v.at("consistency").as_string() == "FileSystemConsistent") ++out.fsc;
    double w = v.at("freeze").at("windowMs").to_number<double>();
    windows.push_back(w);
    std::string last_ready, last_cut;
    for (const auto& vol : v.at("volumes").as_array()) {
      if (vol.at("cutAt").is_string()) last_cut = std::max(last_cut, std::string(vol.at("cutAt").as_string()));
    }
    const auto& fr = v.at("freeze").as_object();
    if (!last_cut.empty() && fr.at("frozenAt").is_string() && fr.at("thawRequestedAt").is_string() &&
        fr.at("thawedAt").is_string()) {
      out.to_cut_ms = std::max(out.to_cut_ms, ms_between(fr.at("frozenAt").as_string(), last_cut));
      out.cut_to_thaw_ms = std::max(out.cut_to_thaw_ms, ms_between(last_cut, fr.at("thawRequestedAt").as_string()));
      out.thaw_ms = std::max(out.thaw_ms, ms_between(fr.at("thawRequestedAt").as_string(), fr.at("thawedAt").as_string()));
      if (fr.contains("heldAt") && fr.at("heldAt").is_string()) {
        out.cut_to_held_ms = std::max(out.cut_to_held_ms, ms_between(last_cut, fr.at("heldAt").as_string()));
        out.held_to_thaw_ms = std::max(out.held_to_thaw_ms, ms_between(fr.at("heldAt").as_string(), fr.at("thawRequestedAt").as_string()));
      }
    }
    for (const auto& vol : v.at("volumes").as_array()) {
      if (vol.as_object().contains("readyAt") && vol.at("readyAt").is_string()) {
        last_ready = std::max(last_ready, std::string(vol.at("readyAt").as_string()));
      }
    }
    const auto& req = v.at("freeze").at("requestedAt");
    if (req.is_string() && !last_ready.empty()) {
      out.per_vm_path_ms = std::max(out.per_vm_path_ms, ms_between(req.as_string(), last_ready));
    }
  }
  std::sort(windows.begin(), windows.end());
  if (!windows.empty()) {
    out.max_window_ms = windows.back();
    out.p50_window_ms = windows[windows.size() / 2];
    out.p99_window_ms = windows[std::min(windows.size() - 1, windows.size() * 99 / 100)];
  }
  return out;
}

// The naive way: one VM at a time; freeze, create the snapshot, GET it every
// second until it is cut, thaw.
Run run_naive(kvb::testing::TestCluster& tc, int vms) {
  Run out;
  auto client = tc.client();
  uint64_t before = requests(tc);
  auto t0 = Clock::now();
  std::vector<double> windows;
  for (int i = 0; i < vms; ++i) {
    std::string vm = "vm-" + std::to_string(i);
    std::string pod = tc.launcher_pod("prod", vm);
    auto f0 = Clock::now();
    tc.exec("prod", pod, "compute", {"virt-freezer", "--freeze", "--name", vm, "--namespace", "prod"});
    std::string snap = "naive-" + vm;
    json::object obj{{"apiVersion", "snapshot.storage.k8s.io/v1"},
                     {"kind", "VolumeSnapshot"},
                     {"metadata", json::object{{"name", snap}, {"namespace", "prod"}}},
                     {"spec", json::object{{"volumeSnapshotClassName", "csi-snap"},
                                           {"source", json::object{{"persistentVolumeClaimName", vm + "-root"}}}}}};
    (void)client->create(kvb::kube::resources::kVolumeSnapshots, "prod", obj);
    for (;;) {
      std::this_thread::sleep_for(1s);  // the baseline's polling interval, on purpose
      auto s = client->get(kvb::kube::resources::kVolumeSnapshots, "prod", snap);
      if (s && !kvb::kube::str_at(*s, {"status", "creationTime"}).empty()) break;
    }
    tc.exec("prod", pod, "compute", {"virt-freezer", "--unfreeze", "--name", vm, "--namespace", "prod"});
    windows.push_back(std::chrono::duration<double, std::milli>(Clock::now() - f0).count());
    ++out.vms;
  }
  out.wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  out.requests = requests(tc) - before;
  std::sort(windows.begin(), windows.end());
  out.max_window_ms = windows.back();
  out.p50_window_ms = windows[windows.size() / 2];
  return out;
}

// The test cluster's loop thread during the run: its CPU, how late it ran
// due timers (its queueing delay), the cuts, and the requests that held it
// longest in total.
void print_test_cluster(const Run& r) {
  auto num = [](const json::value& v, const char* k) { return v.at(k).to_number<double>(); };
  const auto& late = r.tc_stats.at("loop").at("timerLateness");
  const auto& cuts = r.tc_stats.at("cuts");
  std::printf("%-34s test cluster loop: CPU %.0f ms (%.0f%% of wall); timers late p50 %.1f p99 %.1f max %.1f ms\n", "",
              r.loop_cpu_ms, r.wall_ms > 0 ? 100 * r.loop_cpu_ms / r.wall_ms : 0.0, num(late, "p50Ms"), num(late, "p99Ms"),
              num(late, "maxMs"));
  std::printf("%-34s cuts: timer late p99 %.1f max %.1f ms; file work p99 %.2f max %.2f ms; cut() p99 %.2f max %.2f ms\n", "",
              num(cuts.at("lateness"), "p99Ms"), num(cuts.at("lateness"), "maxMs"), num(cuts.at("fileWork"), "p99Ms"),
              num(cuts.at("fileWork"), "maxMs"), num(cuts.at("total"), "p99Ms"), num(cuts.at("total"), "maxMs"));
  std::printf("%-34s frozen (in the cluster) .. snapshot create handled: p50 %.1f p99 %.1f max %.1f ms\n", "",
              num(cuts.at("frozenToCreate"), "p50Ms"), num(cuts.at("frozenToCreate"), "p99Ms"), num(cuts.at("frozenToCreate"), "maxMs"));
  std::vector<std::pair<double, std::string>> by;
  for (const auto& [k, v] : r.tc_stats.at("handled").as_object()) by.emplace_back(num(v, "sumMs"), std::string(k));
  std::sort(by.rbegin(), by.rend());
  for (size_t i = 0; i < std::min<size_t>(by.size(), 5); ++i) {
    const auto& v = r.tc_stats.at("handled").at(by[i].second);
    std::printf("%-34s   handler %-36s n %6.0f  total %7.1f ms  p99 %6.2f max %6.2f ms\n", "", by[i].second.c_str(),
                num(v, "count"), by[i].first, num(v, "p99Ms"), num(v, "maxMs"));
  }
}

void print(const char* label, const Run& r) {
  std::printf("%-34s vms %4d  fsc %4d  wall %9.1f ms  window p50 %7.1f p99 %7.1f max %7.1f ms  requests/VM %5.1f  peak RSS %6ld KiB"
              " (kvbackup's own VmHWM %ld KiB)\n",
              label, r.vms, r.fsc, r.wall_ms, r.p50_window_ms, r.p99_window_ms, r.max_window_ms,
              r.vms ? static_cast<double>(r.requests) / r.vms : 0.0, r.peak_rss_kb, r.own_peak_rss_kb);
  if (r.thaw_ms > 0) {
    std::printf("%-34s window parts (max over VMs): frozen..cut %.1f ms, cut..thaw asked %.1f ms, thaw exec %.1f ms\n", "",
                r.to_cut_ms, r.cut_to_thaw_ms, r.thaw_ms);
    std::printf("%-34s cut..thaw asked split (max): cut..hold checked %.1f ms, hold checked..thaw asked %.1f ms; kvbackup CPU %.0f ms (%.0f%% of wall)\n",
                "", r.cut_to_held_ms, r.held_to_thaw_ms, r.cpu_ms, r.wall_ms > 0 ? 100 * r.cpu_ms / r.wall_ms : 0.0);
  }
  if (r.tc_stats.contains("loop")) print_test_cluster(r);
}

int arg(int argc, char** argv, const char* name, int def) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == name) return std::atoi(argv[i + 1]);
  }
  return def;
}

}  // namespace

int main(int argc, char** argv) {
  int fleet = arg(argc, argv, "--vms", 500);
  int concurrency = arg(argc, argv, "--concurrency", 50);
  int baseline_vms = arg(argc, argv, "--baseline-vms", 10);
  int namespaces = std::max(1, arg(argc, argv, "--namespaces", 1));
  kCutLatencyMs = arg(argc, argv, "--cut-latency-ms", 200);
  int pairs = std::max(0, arg(argc, argv, "--lane-pairs", 1));  // 0: no run without the priority lane
  std::printf("backup_bench: cut latency %.0f ms, ready latency 300 ms, 1 volume per VM\n", kCutLatencyMs);

  kvb::testing::TestCluster one(scenario(1, 1));
  Run single = run_kvbackup(one, "one", concurrency, false);
  print("kvbackup, 1 VM", single);

  std::string label = "kvbackup, " + std::to_string(fleet) + " VMs / " + std::to_string(namespaces) + " ns, c=" + std::to_string(concurrency);
  // Side by side: the same fleet without the priority lane, each run on a
  // fresh test cluster, pairs alternating which mode goes first.
  std::vector<Run> without, with;
  for (int p = 0; p < pairs; ++p) {
    for (int k = 0; k < 2; ++k) {
      bool lane_on = (k == 1) == (p % 2 == 0);
      if (p == 0 && lane_on) continue;  // the first run with the lane is the one below, on `many`
      kvb::testing::TestCluster tc(scenario(fleet, namespaces));
      Run r = run_kvbackup(tc, "fleet", concurrency, namespaces > 1, lane_on ? "" : "0");
      print((label + (lane_on ? ", lane" : ", no lane")).c_str(), r);
      (lane_on ? with : without).push_back(r);
    }
  }

  kvb::testing::TestCluster many(scenario(fleet, namespaces));
  Run fleet_run = run_kvbackup(many, "fleet", concurrency, namespaces > 1);
  print(label.c_str(), fleet_run);
  with.insert(with.begin(), fleet_run);
  struct rusage self {};
  ::getrusage(RUSAGE_SELF, &self);
  std::printf("%-34s peak RSS of this process (the test cluster and the bench) %ld KiB\n", "", self.ru_maxrss);
  if (!without.empty()) {
    auto excess = [](std::vector<Run> runs) {
      std::vector<double> v;
      for (const auto& r : runs) v.push_back(r.max_window_ms - kCutLatencyMs);
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    auto wall = [](std::vector<Run> runs) {
      std::vector<double> v;
      for (const auto& r : runs) v.push_back(r.wall_ms);
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    double off = excess(without), on = excess(with);
    std::printf("\npriority lane (backup/freeze_gate.h), median of %zu runs each:\n", with.size());
    std::printf("  max freeze window - cut latency: without %+.1f ms, with %+.1f ms: %.2fx shorter\n", off, on, on > 0 ? off / on : 0.0);
    std::printf("  wall: without %.1f ms, with %.1f ms: %.2fx\n", wall(without), wall(with), wall(with) / wall(without));
  }
  if (namespaces > 1 || baseline_vms <= 0) {
    std::printf("\nmax freeze window - cut latency: %+.1f ms; wall %.1f ms\n", fleet_run.max_window_ms - kCutLatencyMs,
                fleet_run.wall_ms);
    int waves = (fleet + concurrency - 1) / concurrency;
    std::printf("wall / ideal schedule (%d waves x %.1f ms): %.2fx\n", waves, single.per_vm_path_ms,
                fleet_run.wall_ms / (waves * single.per_vm_path_ms));
    return fleet_run.fsc == fleet_run.vms ? 0 : 1;
  }
  Run naive = run_naive(many, std::min(baseline_vms, fleet));
  print(("naive sequential, " + std::to_string(naive.vms) + " VMs").c_str(), naive);

  int waves = (fleet + concurrency - 1) / concurrency;
  double overhead = std::max(0.0, single.wall_ms - single.per_vm_path_ms);
  double ideal = overhead + waves * single.per_vm_path_ms;
  double naive_fleet = naive.wall_ms / naive.vms * fleet;
  std::printf("\nper-VM critical path (1 VM: freeze requested .. ready) %.1f ms; fixed overhead %.1f ms; %d waves\n",
              single.per_vm_path_ms, overhead, waves);
  std::printf("ideal schedule for %d VMs: %.1f ms\n", fleet, ideal);
  std::printf("\nratios\n");
  std::printf("  wall(%d VMs) / ideal schedule                  %.2fx   (claim: <= 1.5x)  %s\n", fleet,
              fleet_run.wall_ms / ideal, fleet_run.wall_ms / ideal <= 1.5 ? "OK" : "MISSED");
  std::printf("  max freeze window - cut latency, 1 VM          %+.1f ms (claim: <= +100 ms)  %s\n",
              single.max_window_ms - kCutLatencyMs, single.max_window_ms <= kCutLatencyMs + 100 ? "OK" : "MISSED");
  std::printf("  max freeze window - cut latency, %d VMs       %+.1f ms (claim: <= +100 ms)  %s\n", fleet,
              fleet_run.max_window_ms - kCutLatencyMs, fleet_run.max_window_ms <= kCutLatencyMs + 100 ? "OK" : "MISSED");
  std::printf("  naive max window / kvbackup max window (%d VMs) %.2fx\n", fleet, naive.max_window_ms / fleet_run.max_window_ms);
  std::printf("  naive wall (extrapolated to %d VMs) / kvbackup  %.2fx\n", fleet, naive_fleet / fleet_run.wall_ms);
  std::printf("  API requests per VM: kvbackup %.1f, naive %.1f\n", static_cast<double>(fleet_run.requests) / fleet_run.vms,
              static_cast<double>(naive.requests) / naive.vms);
  return fleet_run.fsc == fleet_run.vms && single.fsc == 1 ? 0 : 1;
}
