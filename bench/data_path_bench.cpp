// data_path_bench [--mib 1024]: the data path off the cluster and back
// (issues 17 and 18), end to end on the test cluster with real bytes, side
// by side in one run against what a user would do without kvbackup.
//
// One stopped VM (so its bytes stay put between the runs; the freeze path is
// backup_bench's subject) with one volume of --mib MiB shaped like a VM disk:
// a third random, a third text-like, a third zeros (holes). Then:
//   copy  kvbackup backup create --copy-data (snapshot, temporary claim,
//         VirtualMachineExport, parallel Range download into the repository)
//   put   kvbackup repo put of the same bytes from a local file (the floor:
//         what the repository costs without any transport)
//   user  the script a user would write today: a virtctl-style single gzip
//         stream of the export (curl of disk.img.gz | gunzip) into
//         `restic backup --stdin` (only the transfer is timed, not the export)
//   copy2 a second backup after ~1% of the 4 KiB blocks changed (in runs of 256 KiB): MB/s and
//         the bytes it stored new, with the fingerprint map (the driver's
//         snapshot metadata made unusable: a ServiceAccount that does not exist)
//   copy3 a third backup after another ~1% changed, with changed-block
//         tracking (the test cluster's SnapshotMetadata service): only the
//         changed map regions downloaded; checked with `repo get` against
//         the claim's SHA-256
//   restore  kvbackup restore create --data-source repository (CDI upload)
//         into another namespace, against `kvbackup repo get` of the same
//         image to a local file, and against the user's script: `restic
//         restore` to a file then a curl POST to the upload proxy
//         (virtctl image-upload's path).
// Prints the times, MB/s and the ratios, and where each copy's time went
// (the record's cutAt/readyAt and copy.millis: snapshot cut, readyToUse, the
// temporary claim and export, the transfer, the cleanup). restic must be
// installed (scripts/deps installs it).
//
// --repeat N: the first copy and the put are run N times each (alternating,
// each into a repository of its own, so every one is a first copy), and so
// are the restore, the get and the user's restore script; the medians are
// reported. KVB_BENCH_KVBACKUP_CPUS=<taskset list> runs every
// kvbackup command on those CPUs (run the bench itself, and with it the test
// cluster, with `taskset -c <others>`): kvbackup's share of the copy is then
// separated from the simulator's, which shares the cores otherwise.
// --pinned K:C runs each repetition twice, side by side in one run: shared
// (any CPU) and pinned (kvbackup on CPUs K by taskset, every thread of this
// process, the test cluster's included, on CPUs C by sched_setaffinity), and
// prints both sets of medians and ratios.
// --copy-only: only the copies and puts of the first backup (no user
// script, no second backups, no restore).
// The first copies ask the driver's SnapshotMetadata service for the
// snapshot's allocated ranges and download only those (the holes stay holes,
// as the put of the sparse file skips them); --every-byte makes them read
// every byte instead (the ServiceAccount for the token does not exist).
// --restore-only: one backup (and a restic repository of the same image),
// then only the restores: each repetition (and with --pinned, each in both
// placements) restores from the repository into a fresh namespace, gets the
// image with `repo get` and runs the user's restore script; medians and
// ratios as for the copies, and where each restore's time went (the
// record's millis: plan, DataVolume created, UploadReady, token, transfer,
// Succeeded, bound, VM created).
//
// The scenario's snapshot class states its latencies: the snapshot is cut
// 200 ms after it is created and readyToUse 1 s after the cut (the test
// cluster's defaults); both are part of the copy's time, as on a real array.
#include "common/allocator.h"
#include "common/subprocess.h"
#include "common/time.h"
#include "kube/object.h"
#include "kube/watch.h"
#include "testcluster/csi.h"
#include "tests/support/test_cluster.h"

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <sched.h>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>

using namespace kvb;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

const kube::ResourceRef kExports{"export.kubevirt.io", "v1beta1", "virtualmachineexports", "VirtualMachineExport", true};
const kube::ResourceRef kDataVolumes{"cdi.kubevirt.io", "v1beta1", "datavolumes", "DataVolume", true};
const kube::ResourceRef kUploadTokens{"upload.cdi.kubevirt.io", "v1beta1", "uploadtokenrequests", "UploadTokenRequest", true};
const kube::ResourceRef kCdiConfigs{"cdi.kubevirt.io", "v1beta1", "cdiconfigs", "CDIConfig", false};
const kube::ResourceRef kClaims{"", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true};
const kube::ResourceRef kVirtualMachines{"kubevirt.io", "v1", "virtualmachines", "VirtualMachine", true};

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "data_path_bench: %s\n", what.c_str());
  std::exit(1);
}

// Runs argv (a fixed program, never a shell string built from data); fails the
// bench on a non-zero exit. Returns stdout and the seconds it took. `cpus`:
// a taskset CPU list to run it on (empty: anywhere).
// CPU-seconds (user + system) of the last timed() command and of this
// process (the test cluster's threads) meanwhile: what each side spent,
// whatever else ran on the machine.
struct Cpu {
  double command = 0, cluster = 0;
};
Cpu last_cpu;

double cpu_seconds(int who) {
  rusage u{};
  ::getrusage(who, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

std::pair<std::string, double> timed(std::vector<std::string> argv, const EnvVars& env = {}, const std::string& cpus = {}) {
  ProcessSpec s;
  if (!cpus.empty()) argv.insert(argv.begin(), {"/usr/bin/taskset", "-c", cpus});
  s.argv = std::move(argv);
  s.env_overrides = env;
  s.timeout = 1800s;
  const double children0 = cpu_seconds(RUSAGE_CHILDREN), self0 = cpu_seconds(RUSAGE_SELF);
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_process(s);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  last_cpu = Cpu{cpu_seconds(RUSAGE_CHILDREN) - children0, cpu_seconds(RUSAGE_SELF) - self0};
  if (!r) fail(s.argv.at(0) + ": " + r.error().message);
  if (r->exit_code != 0) fail(s.argv.at(0) + " " + (s.argv.size() > 1 ? s.argv[1] : "") + " exited " +
                              std::to_string(r->exit_code) + ": " + r->err);
  // kvbackup's own account of each copy (its transfer time within the whole run).
  for (const char* what : {"snapshot metadata names", "copied VM"}) {
    for (size_t at = r->err.find(what); at != std::string::npos; at = r->err.find(what, at + 1)) {
      const size_t line = r->err.rfind('\n', at) == std::string::npos ? 0 : r->err.rfind('\n', at) + 1;
      std::printf("  (%s)\n", r->err.substr(line, r->err.find('\n', at) - line).c_str());
    }
  }
  return {r->out, secs};
}

// A VM-disk-like image: per MiB, alternating random, text-like and zero (a hole).
void fill_image(const std::filesystem::path& file, int64_t mib) {
  int fd = ::open(file.c_str(), O_WRONLY);
  if (fd < 0) fail("cannot open " + file.string());
  std::mt19937_64 rng(7);
  std::vector<std::string> words;
  for (int i = 0; i < 5000; ++i) {
    std::string w;
    for (int n = 3 + static_cast<int>(rng() % 10); n > 0; --n) w += static_cast<char>('a' + rng() % 26);
    words.push_back(w);
  }
  std::vector<char> block(size_t{1} << 20);
  for (int64_t i = 0; i < mib; ++i) {
    if (i % 3 == 2) continue;  // zeros: left a hole
    if (i % 3 == 0) {
      for (size_t j = 0; j < block.size(); j += 8) {
        uint64_t v = rng();
        std::memcpy(block.data() + j, &v, 8);
      }
    } else {
      size_t j = 0;
      while (j < block.size()) {
        const std::string& w = words[rng() % words.size()];
        for (char c : w) {
          if (j < block.size()) block[j++] = c;
        }
        if (j < block.size()) block[j++] = (rng() % 12 == 0) ? '\n' : ' ';
      }
    }
    if (::pwrite(fd, block.data(), block.size(), i << 20) != static_cast<ssize_t>(block.size())) fail("short write");
  }
  ::close(fd);
}

// Overwrites ~1% of the 4 KiB blocks with new random bytes, in runs of 64
// blocks (256 KiB) at random places, as a file system's writes cluster (1%
// scattered as single blocks would touch almost every content-defined chunk
// of ~1 MiB, which no VM's week of writes looks like). Returns the blocks.
int64_t change_one_percent(const std::filesystem::path& file, int64_t size, uint64_t seed) {
  int fd = ::open(file.c_str(), O_WRONLY);
  std::mt19937_64 rng(seed);
  constexpr int64_t kRun = 64 * 4096;
  const int64_t runs = std::max<int64_t>(1, size / 100 / kRun);
  std::vector<char> b(kRun);
  for (int64_t i = 0; i < runs; ++i) {
    for (size_t j = 0; j < b.size(); j += 8) {
      uint64_t v = rng();
      std::memcpy(b.data() + j, &v, 8);
    }
    int64_t at = static_cast<int64_t>(rng() % static_cast<uint64_t>(size / 4096 - 64)) * 4096;
    if (::pwrite(fd, b.data(), b.size(), at) != kRun) fail("short write");
  }
  ::close(fd);
  return runs * 64;
}

json::object only_volume(const std::string& record_json) {
  auto rec = json::parse(record_json).as_object();
  const auto& vms = rec.at("vms").as_array();
  if (vms.size() != 1) fail("the record has " + std::to_string(vms.size()) + " VMs");
  const auto& vols = vms.at(0).at("volumes").as_array();
  if (vols.size() != 1) fail("the record has " + std::to_string(vols.size()) + " volumes");
  const auto* copy = kube::object_at(vols.at(0), {"copy"});
  if (!copy || !kube::str_at(*copy, {"error"}).empty()) fail("the volume was not copied: " + record_json);
  return *copy;
}

double seconds_between(const json::value* from, const json::value* to) {
  if (!from || !to || !from->is_string() || !to->is_string()) return 0;
  auto a = parse_rfc3339(from->as_string()), b = parse_rfc3339(to->as_string());
  if (!a || !b) return 0;
  return std::chrono::duration<double>(*b - *a).count();
}

// Where one backup's time went, from its record: the snapshot (created at the
// run's start, cut, readyToUse) and the copy's own stages (copy.millis).
struct Stages {
  double cut = 0, ready = 0, plan = 0, create = 0, export_ready = 0, transfer = 0, cleanup = 0, record = 0;
};

Stages stages_of(const std::string& record_json) {
  auto rec = json::parse(record_json).as_object();
  const auto& vol = rec.at("vms").as_array().at(0).at("volumes").as_array().at(0).as_object();
  Stages s;
  s.cut = seconds_between(rec.if_contains("startedAt"), vol.if_contains("cutAt"));
  s.ready = seconds_between(vol.if_contains("cutAt"), vol.if_contains("readyAt"));
  s.record = seconds_between(rec.if_contains("startedAt"), rec.if_contains("finishedAt"));
  if (const auto* m = kube::object_at(vol, {"copy", "millis"})) {
    auto ms = [&](const char* k) { return m->contains(k) ? static_cast<double>(m->at(k).to_number<int64_t>()) / 1000 : 0.0; };
    s.plan = ms("plan"), s.create = ms("create"), s.export_ready = ms("ready"), s.transfer = ms("transfer"), s.cleanup = ms("cleanup");
  }
  return s;
}

void print_stages(const char* what, const Stages& s, double whole) {
  std::printf("  %-7s start->cut %.2f, cut->readyToUse %.2f | copy: plan %.2f, claim+export created %.2f, export Ready %.2f, "
              "transfer %.2f, cleanup %.2f | record %.2f, process %.2f s\n",
              what, s.cut, s.ready, s.plan, s.create, s.export_ready, s.transfer, s.cleanup, s.record, whole);
}

// Where one restore from the repository went, from its record's millis.
struct RestoreStages {
  double plan = 0, created = 0, upload_ready = 0, token = 0, transfer = 0, succeeded = 0, bound = 0, vm = 0, record = 0;
};

RestoreStages restore_stages_of(const json::object& rec) {
  auto ms = [](const json::value* o, const char* k) {
    const auto* m = o && o->is_object() ? o->as_object().if_contains("millis") : nullptr;
    const auto* v = m && m->is_object() ? m->as_object().if_contains(k) : nullptr;
    return v && v->is_number() ? static_cast<double>(v->to_number<int64_t>()) / 1000 : 0.0;
  };
  const json::value whole(rec);
  const json::value& vm = rec.at("vms").as_array().at(0);
  const json::value& claim = vm.at("claims").as_array().at(0);
  RestoreStages s;
  s.plan = ms(&whole, "plan");
  s.created = ms(&vm, "claims");
  s.upload_ready = ms(&claim, "uploadReady");
  s.token = ms(&claim, "token");
  s.transfer = ms(&claim, "transfer");
  s.succeeded = ms(&claim, "succeeded");
  s.bound = ms(&vm, "bound");
  s.vm = ms(&vm, "vm");
  s.record = seconds_between(rec.if_contains("startedAt"), rec.if_contains("finishedAt"));
  return s;
}

void print_restore_stages(const char* what, const RestoreStages& s, double whole) {
  std::printf("  %-10s plan %.2f | DataVolume created %.2f, UploadReady %.2f, token %.2f, transfer %.2f, Succeeded %.2f | "
              "bound %.2f, VM created %.2f | record %.2f, process %.2f s\n",
              what, s.plan, s.created, s.upload_ready, s.token, s.transfer, s.succeeded, s.bound, s.vm, s.record, whole);
}

// Pins every thread of this process (threads made later inherit it) to the
// CPUs of a taskset-style list ("0", "0,2", "0-1"); empty: every CPU.
void pin_process(const std::string& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (cpus.empty()) {
    for (unsigned c = 0; c < std::thread::hardware_concurrency(); ++c) CPU_SET(c, &set);
  } else {
    size_t at = 0;
    while (at < cpus.size()) {
      size_t end = cpus.find(',', at);
      if (end == std::string::npos) end = cpus.size();
      const std::string item = cpus.substr(at, end - at);
      const size_t dash = item.find('-');
      const int first = std::atoi(item.c_str()), last = dash == std::string::npos ? first : std::atoi(item.c_str() + dash + 1);
      for (int c = first; c <= last; ++c) CPU_SET(c, &set);
      at = end + 1;
    }
  }
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    const pid_t tid = static_cast<pid_t>(std::atoi(task.path().filename().c_str()));
    if (::sched_setaffinity(tid, sizeof set, &set) != 0) fail("cannot pin thread " + std::to_string(tid) + " to CPUs " + cpus);
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  kvb::tune_allocator_for_streaming();  // as kvbackup-testcluster does (and kvbackup on its data path)
  int64_t mib = 1024;
  int repeat = 1;
  bool copy_only = false, restore_only = false, every_byte = false;
  std::string pin_kvb, pin_cluster;  // --pinned K:C
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--mib") == 0 && i + 1 < argc) mib = std::atoll(argv[++i]);
    else if (std::strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) repeat = std::max(1, std::atoi(argv[++i]));
    else if (std::strcmp(argv[i], "--copy-only") == 0) copy_only = true;
    else if (std::strcmp(argv[i], "--every-byte") == 0) every_byte = true;
    else if (std::strcmp(argv[i], "--restore-only") == 0) restore_only = true;
    else if (std::strcmp(argv[i], "--pinned") == 0 && i + 1 < argc) {
      const std::string kc = argv[++i];
      const size_t colon = kc.find(':');
      if (colon == std::string::npos || colon == 0 || colon + 1 == kc.size()) fail("--pinned wants KVBACKUP_CPUS:CLUSTER_CPUS, e.g. 1:0");
      pin_kvb = kc.substr(0, colon), pin_cluster = kc.substr(colon + 1);
    } else fail(std::string("unknown argument ") + argv[i] + " (--mib N, --repeat N, --pinned K:C, --copy-only, --restore-only, --every-byte)");
  }
  const char* cpus_env = std::getenv("KVB_BENCH_KVBACKUP_CPUS");
  const std::string kvb_cpus_default = cpus_env ? cpus_env : "";
  std::string kvb_cpus = kvb_cpus_default;  // the pinned phase of --pinned changes it
  const int64_t size = mib << 20;
  const double mb = static_cast<double>(size) / 1e6;
  std::string scenario =
      "storageClasses: [{name: fast, provisioner: csi.example.com}]\n"
      "snapshotClasses: [{name: csi-snap, driver: csi.example.com, snapshotMetadata: true}]\n"
      "namespaces:\n  - name: prod\n    vms:\n"
      "      - {name: db, running: false, volumes: [{name: rootdisk, type: persistentVolumeClaim, size: " +
      std::to_string(mib) + "Mi, storageClass: fast}]}\n  - name: dr\n";
  if (copy_only && restore_only) fail("--copy-only and --restore-only exclude each other");
  testing::TestCluster tc(scenario);
  // The claim's file for writing: asked again before each write, since a
  // snapshot cut since shares the file until the claim is written.
  std::filesystem::path claim;
  auto writable = [&] {
    tc.cluster().loop().run_sync([&] {
      auto w = tc.cluster().csi().volume_store().writable_claim_path("prod", "db-rootdisk");
      if (!w) fail("the claim has no file: " + w.error().message);
      claim = *w;
    });
    return claim;
  };
  fill_image(writable(), mib);
  tc.cluster().loop().run_sync([&] { tc.cluster().csi().volume_store().claim_written("prod", "db-rootdisk"); });
  tc.dir().write("pw", "bench-password\n", 0600);
  const std::string kvb = testing::kvbackup_binary(), kc = tc.kubeconfig().string(), pw = (tc.dir() / "pw").string();
  const std::string loc = (tc.dir() / "location").string(), image = (tc.dir() / "image").string();
  auto kvbackup = [&](std::vector<std::string> args, const EnvVars& env = {}) {
    args.insert(args.begin(), {kvb, "--kubeconfig", kc});
    return timed(std::move(args), env, kvb_cpus);
  };
  // The ServiceAccount whose token asks for the snapshot metadata: prod/default
  // (changed-block tracking), or one that does not exist (the fingerprint map).
  const EnvVars cbt_on{{"KVBACKUP_SERVICE_ACCOUNT", "prod/default"}}, cbt_off{{"KVBACKUP_SERVICE_ACCOUNT", "prod/no-such-account"}};
  auto backup_at = [&](const std::string& name, const std::string& at, const EnvVars& env = {}) {
    return kvbackup({"backup", "create", name, "-n", "prod", "--location", at, "--copy-data", "--password-file", pw, "-o", "json"}, env);
  };
  auto backup = [&](const std::string& name, const EnvVars& env = {}) { return backup_at(name, loc, env); };
  std::printf("data path of one %lld MiB volume (1/3 random, 1/3 text, 1/3 holes) on the test cluster, %u CPUs, kvbackup on %s\n",
              static_cast<long long>(mib), std::thread::hardware_concurrency(), kvb_cpus.empty() ? "any CPU" : ("CPUs " + kvb_cpus).c_str());

  // copy, then the repository floor on the same bytes; with --repeat, each
  // again into fresh repositories (every copy a first copy), alternating.
  const std::string claim_sha = tc.claim_sha256("prod", "db-rootdisk");
  timed({"cp", "--sparse=always", claim.string(), image});
  const std::string put_repo = (tc.dir() / "put-repo").string();
  std::vector<double> copies, puts, transfers, pcopies, pputs, ptransfers;
  json::object first_copy;  // b1's copy
  for (int run = 0; run < (restore_only ? 1 : repeat); ++run) {
    for (const bool pinned : {false, true}) {
      if (pinned && (pin_kvb.empty() || restore_only)) continue;
      const std::string suffix = (pinned ? "-p" : "-") + std::to_string(run);
      const bool first = run == 0 && !pinned;  // b1 at `loc`: the series b2 and b3 build on
      kvb_cpus = pinned ? pin_kvb : kvb_cpus_default;
      if (!pin_kvb.empty()) pin_process(pinned ? pin_cluster : "");
      auto [rec, t] = backup_at(first ? "b1" : "b1" + suffix, first ? loc : loc + suffix, every_byte ? cbt_off : cbt_on);
      const json::object c = only_volume(rec);
      if (kube::str_at(c, {"sha256"}) != claim_sha) fail("the copy's SHA-256 is not the claim's");
      if (c.contains("allocatedOnly") == every_byte) fail("the first copy did not read what the bench asked for (allocatedOnly)");
      if (run == 0) std::printf("  (first copy: %lld bytes downloaded)\n", static_cast<long long>(c.at("downloadedBytes").to_number<int64_t>()));
      const Cpu copy_cpu = last_cpu;
      if (first) first_copy = c;
      const Stages st = stages_of(rec);
      print_stages(pinned ? "copy[p]" : "copy", st, t);
      std::printf("  %-7s CPU-seconds: kvbackup %.2f, test cluster %.2f\n", pinned ? "copy[p]" : "copy", copy_cpu.command, copy_cpu.cluster);
      (pinned ? pcopies : copies).push_back(t);
      (pinned ? ptransfers : transfers).push_back(st.transfer);
      const std::string pr = first ? put_repo : put_repo + suffix;
      kvbackup({"repo", "init", "--repo", pr, "--password-file", pw});
      auto [out, tp] = kvbackup({"repo", "put", "--repo", pr, "--password-file", pw, "vm", image});
      std::printf("  %-7s %.2f s; CPU-seconds: kvbackup %.2f\n", pinned ? "put[p]" : "put", tp, last_cpu.command);
      (pinned ? pputs : puts).push_back(tp);
    }
  }
  kvb_cpus = kvb_cpus_default;
  if (!pin_kvb.empty()) pin_process("");
  const double t_copy = median(copies), t_put = median(puts), t_transfer = median(transfers);
  auto rate = [&](double secs) { return mb / secs; };
  // The pinned medians and ratios, next to the shared ones.
  auto print_pinned = [&] {
    if (pin_kvb.empty()) return;
    const double c = median(pcopies), p = median(pputs), x = median(ptransfers);
    std::printf("\npinned: kvbackup on CPUs %s, the test cluster on CPUs %s (median of %d)\n", pin_kvb.c_str(), pin_cluster.c_str(), repeat);
    std::printf("%-62s %8.2f %9.0f\n", "copy[p]: backup create --copy-data (first)", c, rate(c));
    std::printf("%-62s %8.2f %9.0f\n", "  of it, the copy's transfer", x, rate(x));
    std::printf("%-62s %8.2f %9.0f\n", "put[p]:  repo put of the same image from a local file", p, rate(p));
    std::printf("  copy / put, pinned (target <= 1.20)                      %6.2f\n", c / p);
    std::printf("  transfer / put, pinned                                   %6.2f\n", x / p);
  };
  if (copy_only) {
    std::printf("\n%-62s %8s %9s   (median of %d)\n", "", "seconds", "MB/s", repeat);
    std::printf("%-62s %8.2f %9.0f\n", "copy:    backup create --copy-data (first)", t_copy, rate(t_copy));
    std::printf("%-62s %8.2f %9.0f\n", "  of it, the copy's transfer (download into the put)", t_transfer, rate(t_transfer));
    std::printf("%-62s %8.2f %9.0f\n", "put:     repo put of the same image from a local file", t_put, rate(t_put));
    std::printf("\nratios (kvbackup on %s)\n", kvb_cpus.empty() ? "any CPU, shared with the test cluster" : ("CPUs " + kvb_cpus).c_str());
    std::printf("  copy / put (transport overhead; target <= 1.20)          %6.2f\n", t_copy / t_put);
    std::printf("  transfer / put (the copy step alone)                     %6.2f\n", t_transfer / t_put);
    print_pinned();
    return 0;
  }
  const EnvVars restic_env{{"RESTIC_PASSWORD", "bench-password"}, {"RESTIC_CACHE_DIR", (tc.dir() / "restic-cache").string()}};
  const std::string restic_repo = (tc.dir() / "restic").string();
  timed({"restic", "init", "--repo", restic_repo}, restic_env);

  // Restores from the repository against repo get and the user's script:
  // `repeat` rounds (each in both placements with --pinned), each into a
  // namespace of its own; what each made is deleted after it (disk space).
  struct RestoreResults {
    std::vector<double> restore, get, user, prestore, pget, puser;
  };
  tc.dir().write("cluster-ca.pem", tc.cluster().ca().cert_pem);
  const std::string cluster_ca = (tc.dir() / "cluster-ca.pem").string();
  auto drop_upload = [&](const std::string& ns, const std::string& name) {
    (void)tc.client()->remove(kDataVolumes, ns, name);
    (void)tc.client()->remove(kClaims, ns, name);
  };
  auto measure_restores = [&](const std::string& backup_name, const json::object& copy, const std::string& restic,
                              const EnvVars& restic_env_) {
    RestoreResults rr;
    const std::string want_sha(kube::str_at(copy, {"sha256"}));
    int round = 0;
    for (int run = 0; run < repeat; ++run) {
      for (const bool pinned : {false, true}) {
        if (pinned && pin_kvb.empty()) continue;
        kvb_cpus = pinned ? pin_kvb : kvb_cpus_default;
        if (!pin_kvb.empty()) pin_process(pinned ? pin_cluster : "");
        const std::string n = std::to_string(round++), ns = "dr" + n;
        auto [rrec, t_restore] = kvbackup({"restore", "create", "r" + n, "--from-backup", backup_name, "--location", loc,
                                           "--namespace-mapping", "prod:" + ns, "--create-namespace", "--data-source", "repository",
                                           "--run-strategy", "Halted", "--password-file", pw, "--upload-proxy-ca", cluster_ca, "-o", "json"});
        const auto r = json::parse(rrec).as_object();
        const std::string rclaim(kube::str_at(r.at("vms").as_array().at(0).at("claims").as_array().at(0), {"claim"}));
        if (tc.claim_sha256(ns, rclaim) != want_sha) fail("the restored claim's SHA-256 differs from the backed-up image's");
        print_restore_stages(pinned ? "restore[p]" : "restore", restore_stages_of(r), t_restore);
        (void)tc.client()->remove(kVirtualMachines, ns, "db");
        drop_upload(ns, rclaim);

        const std::string got = (tc.dir() / "got").string();
        auto [get_out, t_get] = kvbackup({"repo", "get", "--repo", loc + "/repository", "--password-file", pw,
                                          std::string(kube::str_at(copy, {"repositorySnapshot"})), got});
        std::filesystem::remove(got);

        const std::string dvname = "user-upload";
        json::object dv{{"apiVersion", "cdi.kubevirt.io/v1beta1"},
                        {"kind", "DataVolume"},
                        {"metadata", json::object{{"name", dvname}}},
                        {"spec", json::object{{"source", json::object{{"upload", json::object{}}}},
                                              {"pvc", json::object{{"accessModes", json::array{"ReadWriteOnce"}},
                                                                   {"storageClassName", "fast"},
                                                                   {"resources", json::object{{"requests", json::object{{"storage", std::to_string(size)}}}}}}}}}};
        if (!tc.client()->create(kDataVolumes, ns, dv)) fail("cannot create the upload DataVolume");
        if (!kube::wait_for_object(
                tc.client(), kDataVolumes, ns, dvname,
                [](const json::object* o) { return o && kube::str_at(*o, {"status", "phase"}) == "UploadReady"; }, 60s))
          fail("the upload DataVolume never became UploadReady");
        auto utr = tc.client()->create(kUploadTokens, ns,
                                       json::object{{"apiVersion", "upload.cdi.kubevirt.io/v1beta1"},
                                                    {"kind", "UploadTokenRequest"},
                                                    {"metadata", json::object{{"name", dvname}}},
                                                    {"spec", json::object{{"pvcName", dvname}}}});
        if (!utr) fail("no upload token");
        const std::string upload_token(kube::str_at(*utr, {"status", "token"}));
        auto cfg = tc.client()->get(kCdiConfigs, "", "config");
        if (!cfg) fail("no CDIConfig");
        const std::string proxy = "https://" + std::string(kube::str_at(*cfg, {"status", "uploadProxyURL"})) + "/v1beta1/upload";
        const std::string restored = (tc.dir() / "restic-out").string();
        auto [ur_out, t_user] =
            timed({"bash", "-o", "pipefail", "-c",
                   "restic --repo \"$1\" restore latest --target \"$2\" -q && "
                   "curl -sS --fail -o /dev/null --cacert \"$3\" -H \"Authorization: Bearer $4\" "
                   "-H 'Content-Type: application/octet-stream' -X POST -T \"$2/disk.img\" \"$5\"",
                   "user", restic, restored, cluster_ca, upload_token, proxy},
                  restic_env_, kvb_cpus);
        std::filesystem::remove_all(restored);
        drop_upload(ns, dvname);
        std::printf("  %-10s %.2f s, get %.2f s, user script %.2f s\n", pinned ? "round[p]" : "round", t_restore, t_get, t_user);
        (pinned ? rr.prestore : rr.restore).push_back(t_restore);
        (pinned ? rr.pget : rr.get).push_back(t_get);
        (pinned ? rr.puser : rr.user).push_back(t_user);
      }
    }
    kvb_cpus = kvb_cpus_default;
    if (!pin_kvb.empty()) pin_process("");
    return rr;
  };
  auto print_restores = [&](const RestoreResults& rr) {
    auto block = [&](const char* tag, const std::vector<double>& rs, const std::vector<double>& gs, const std::vector<double>& us,
                     const std::string& where) {
      const double r = median(rs), g = median(gs), u = median(us);
      std::printf("\nrestores, %s (median of %zu)\n", where.c_str(), rs.size());
      std::printf("%-62s %8.2f %9.0f\n", (std::string("restore") + tag + ": restore create --data-source repository").c_str(), r, rate(r));
      std::printf("%-62s %8.2f %9.0f\n", (std::string("get") + tag + ":     repo get of the same image to a local file").c_str(), g, rate(g));
      std::printf("%-62s %8.2f %9.0f\n", (std::string("user") + tag + ":    restic restore, then curl POST to the upload proxy").c_str(), u,
                  rate(u));
      std::printf("  restore / get%s (restore overhead; target <= 1.20)      %6.2f\n", tag, r / g);
      std::printf("  user restore script / restore%s (target >= 2)           %6.2f\n", tag, u / r);
    };
    block("", rr.restore, rr.get, rr.user,
          kvb_cpus_default.empty() ? "kvbackup on any CPU, shared with the test cluster" : "kvbackup on CPUs " + kvb_cpus_default);
    if (!pin_kvb.empty()) block("[p]", rr.prestore, rr.pget, rr.puser, "pinned: kvbackup and the user's script on CPUs " + pin_kvb +
                                                                         ", the test cluster on CPUs " + pin_cluster);
  };

  if (restore_only) {
    // The user's restic repository holds the same image (not timed: only its restore is compared).
    timed({"bash", "-o", "pipefail", "-c", "restic --repo \"$1\" backup --stdin --stdin-filename disk.img -q < \"$2\"", "user",
           restic_repo, image},
          restic_env);
    print_restores(measure_restores("b1", first_copy, restic_repo, restic_env));
    return 0;
  }

  // The user's script: one gzip stream of the export into restic.
  auto exported = testing::export_claim(tc, "prod", "db-rootdisk", "user");
  if (!exported) fail("cannot export the claim: " + exported.error().message);
  const std::string token = exported->token, gz_url = exported->url("gzip");
  if (gz_url.empty()) fail("the export has no gzip link");
  tc.dir().write("export-ca.pem", exported->ca_pem());
  // A fixed script; the data comes in as positional parameters.
  auto [user_out, t_user] = timed({"bash", "-o", "pipefail", "-c",
                                   "curl -sS --fail --cacert \"$1\" -H \"x-kubevirt-export-token: $2\" \"$3\" | gunzip | "
                                   "restic --repo \"$4\" backup --stdin --stdin-filename disk.img --compression auto -q",
                                   "user", (tc.dir() / "export-ca.pem").string(), token, gz_url, restic_repo},
                                  restic_env);
  tc.client()->remove(kExports, "prod", "user");

  // The second backup, ~1% of the blocks changed.
  const int64_t changed = change_one_percent(writable(), size, 11);
  tc.cluster().loop().run_sync([&] { tc.cluster().csi().volume_store().claim_written("prod", "db-rootdisk"); });
  auto [rec2, t_copy2] = backup("b2", cbt_off);
  const json::object copy2 = only_volume(rec2);
  if (kube::str_at(copy2, {"changeTracking"}) != "fingerprint") fail("copy2 did not use the fingerprint map: " + rec2);
  timed({"cp", "--sparse=always", claim.string(), image});
  auto [put2_out, t_put2] = kvbackup({"repo", "put", "--repo", put_repo, "--password-file", pw, "vm", image});

  // The third backup, another ~1% changed, with changed-block tracking.
  const int64_t changed3 = change_one_percent(writable(), size, 13);
  tc.cluster().loop().run_sync([&] { tc.cluster().csi().volume_store().claim_written("prod", "db-rootdisk"); });
  auto [rec3, t_copy3] = backup("b3", cbt_on);
  const json::object copy3 = only_volume(rec3);
  if (kube::str_at(copy3, {"changeTracking"}) != "snapshot-metadata") fail("copy3 did not use the snapshot metadata: " + rec3);
  {
    const std::string got3 = (tc.dir() / "got3").string();
    kvbackup({"repo", "get", "--repo", loc + "/repository", "--password-file", pw, std::string(kube::str_at(copy3, {"repositorySnapshot"})), got3});
    auto [sum, t_sum] = timed({"sha256sum", got3});
    if (sum.substr(0, 64) != tc.claim_sha256("prod", "db-rootdisk")) fail("copy3 does not restore the claim's bytes");
    std::filesystem::remove(got3);
  }
  // (The restore below reads b2's repository snapshot and compares with b2's digest.)

  const RestoreResults rr = measure_restores("b2", copy2, restic_repo, restic_env);
  print_stages("copy2", stages_of(rec2), t_copy2);
  print_stages("copy3", stages_of(rec3), t_copy3);
  std::printf("\n%-62s %8s %9s\n", "", "seconds", "MB/s");
  std::printf("%-62s %8.2f %9.0f\n", "copy:    backup create --copy-data (first)", t_copy, rate(t_copy));
  std::printf("%-62s %8.2f %9.0f\n", "  of it, the copy's transfer (download into the put)", t_transfer, rate(t_transfer));
  std::printf("%-62s %8.2f %9.0f\n", "put:     repo put of the same image from a local file", t_put, rate(t_put));
  std::printf("%-62s %8.2f %9.0f\n", "user:    gzip export stream | restic backup --stdin", t_user, rate(t_user));
  std::printf("%-62s %8.2f %9.0f   new bytes stored %lld (%lld blocks changed), downloaded %lld bytes\n",
              "copy2:   backup create --copy-data, ~1% changed, fingerprint map", t_copy2, rate(t_copy2),
              static_cast<long long>(copy2.at("newBytes").to_number<int64_t>()), static_cast<long long>(changed),
              static_cast<long long>(copy2.at("downloadedBytes").to_number<int64_t>()));
  std::printf("%-62s %8.2f %9.0f   new bytes stored %lld (%lld blocks changed), downloaded %lld bytes\n",
              "copy3:   backup create --copy-data, ~1% changed, changed-block tracking", t_copy3, rate(t_copy3),
              static_cast<long long>(copy3.at("newBytes").to_number<int64_t>()), static_cast<long long>(changed3),
              static_cast<long long>(copy3.at("downloadedBytes").to_number<int64_t>()));
  std::printf("%-62s %8.2f %9.0f\n", "put2:    repo put of the changed image from a local file", t_put2, rate(t_put2));
  std::printf("\nratios (kvbackup on %s%s)\n", kvb_cpus.empty() ? "any CPU, shared with the test cluster" : ("CPUs " + kvb_cpus).c_str(),
              repeat > 1 ? ("; copy and put: medians of " + std::to_string(repeat)).c_str() : "");
  std::printf("  copy / put (transport overhead; target <= 1.20)          %6.2f\n", t_copy / t_put);
  std::printf("  transfer / put (the copy step alone)                     %6.2f\n", t_transfer / t_put);
  std::printf("  user script / copy (target >= 3)                         %6.2f\n", t_user / t_copy);
  std::printf("  copy2 / put2 (incremental transport overhead)            %6.2f\n", t_copy2 / t_put2);
  std::printf("  copy2 / copy3 (fingerprint map / changed-block tracking)  %6.2f\n", t_copy2 / t_copy3);
  print_pinned();
  print_restores(rr);
  return 0;
}
