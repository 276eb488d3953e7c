// export_bench [--mib 1024]: raw VirtualMachineExport download throughput on
// loopback from the test cluster's export server (issue 16: the simulator
// must not be the bottleneck of the data path; aim >= 1 GB/s with ranges in
// parallel). One volume of --mib MiB of data (every byte written, no holes)
// is exported and downloaded, side by side in one run:
//   - with curl (a real client): 1 process for the whole image, then N
//     processes each fetching 1/N of it with a Range request;
//   - with kvbackup's own ranged download (src/net/ranged_download, SHA-256
//     of every byte on the caller's thread) at 1, 4 and 8 connections;
//   - the same through port-forwards to the exporter pod (links.internal, one
//     WebSocket tunnel per connection through the API server, TLS inside; what
//     --copy-data does without an Ingress) at 1 and 4 connections.
// Prints MB/s of each and the ratios to the single-stream curl.
#include "common/allocator.h"
#include "common/subprocess.h"
#include "kube/object.h"
#include "kube/port_forward.h"
#include "net/ranged_download.h"
#include "testcluster/csi.h"
#include "tests/support/test_cluster.h"

#include <boost/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <thread>
#include <unistd.h>

using namespace kvb;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  kvb::tune_allocator_for_streaming();  // as kvbackup-testcluster does (and kvbackup on its data path)
  int64_t mib = 1024;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--mib") == 0) mib = std::atoll(argv[i + 1]);
  }
  const int64_t size = mib << 20;
  std::string scenario = "storageClasses: [{name: fast, provisioner: csi.example.com}]\nnamespaces:\n  - name: prod\n    vms:\n"
                         "      - {name: off, running: false, volumes: [{name: rootdisk, type: persistentVolumeClaim, size: " +
                         std::to_string(mib) + "Mi, storageClass: fast}]}\n";
  testing::TestCluster tc(scenario);
  // Every byte data: the server reads real extents, not holes.
  std::filesystem::path file;
  tc.cluster().loop().run_sync([&] { file = tc.cluster().csi().volume_store().claim_path("prod", "off-rootdisk"); });
  {
    int fd = ::open(file.c_str(), O_WRONLY);
    std::vector<char> block(size_t{1} << 20);
    for (size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>(i * 131 + 7);
    for (int64_t off = 0; off < size; off += static_cast<int64_t>(block.size())) {
      block[0] = static_cast<char>(off >> 20);
      if (::pwrite(fd, block.data(), block.size(), off) != static_cast<ssize_t>(block.size())) return 2;
    }
    ::close(fd);
  }
  tc.cluster().loop().run_sync([&] { tc.cluster().csi().volume_store().claim_written("prod", "off-rootdisk"); });
  auto exported = testing::export_claim(tc, "prod", "off-rootdisk", "bench");
  if (!exported) return 3;
  const std::string token = exported->token, url = exported->url("raw"), ca_pem = exported->ca_pem();
  tc.dir().write("ca.pem", ca_pem);
  const std::string ca = (tc.dir() / "ca.pem").string();
  const double mb = static_cast<double>(size) / 1e6;

  auto curl = [&](int parts) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> ts;
    bool ok = true;
    for (int p = 0; p < parts; ++p) {
      ts.emplace_back([&, p] {
        ProcessSpec s;
        int64_t a = size / parts * p, b = p + 1 == parts ? size - 1 : size / parts * (p + 1) - 1;
        s.argv = {"curl", "-sS", "--fail", "-o", "/dev/null", "--cacert", ca, "-H", "x-kubevirt-export-token: " + token};
        if (parts > 1) s.argv.insert(s.argv.end(), {"-r", std::to_string(a) + "-" + std::to_string(b)});
        s.argv.push_back(url);
        s.timeout = 600s;
        auto r = run_process(s);
        if (!r || r->exit_code != 0) ok = false;
      });
    }
    for (auto& t : ts) t.join();
    double s = seconds_since(t0);
    return ok ? mb / s : 0.0;
  };
  auto ours = [&](unsigned conns) {
    net::DownloadOptions o;
    o.connections = conns;
    o.headers = {{"x-kubevirt-export-token", token}};
    o.transport.ca_pem = ca_pem;
    int fd = ::open("/dev/null", O_WRONLY);
    auto t0 = std::chrono::steady_clock::now();
    auto r = net::download(url, fd, o);
    double s = seconds_since(t0);
    ::close(fd);
    return r && r->bytes == static_cast<uint64_t>(size) ? mb / s : 0.0;
  };
  const std::string internal_url = exported->url("raw", "internal");
  auto tunnelled = [&](unsigned conns) {
    net::DownloadOptions o;
    o.connections = conns;
    o.headers = {{"x-kubevirt-export-token", token}};
    o.transport.ca_pem = exported->ca_pem("internal");
    auto client = tc.client();
    o.transport.dial = [client]() -> Result<int> {
      auto pf = kube::open_port_forward(client, kube::PortForwardRequest{"prod", "virt-export-bench", 8443});
      if (!pf) return pf.error();
      return (*pf)->take_fd();
    };
    int fd = ::open("/dev/null", O_WRONLY);
    auto t0 = std::chrono::steady_clock::now();
    auto r = net::download(internal_url, fd, o);
    double s = seconds_since(t0);
    ::close(fd);
    if (!r) std::fprintf(stderr, "port-forward download: %s\n", r.error().message.c_str());
    return r && r->bytes == static_cast<uint64_t>(size) ? mb / s : 0.0;
  };
  double c1 = curl(1), c4 = curl(4), c8 = curl(8);
  double o1 = ours(1), o4 = ours(4), o8 = ours(8);
  double p1 = tunnelled(1), p4 = tunnelled(4);
  std::printf("export download of %lld MiB (every byte data) on loopback, %u CPUs\n", static_cast<long long>(mib),
              std::thread::hardware_concurrency());
  std::printf("  curl, 1 stream          %8.0f MB/s\n", c1);
  std::printf("  curl, 4 ranges at once  %8.0f MB/s  (x%.2f)\n", c4, c1 > 0 ? c4 / c1 : 0);
  std::printf("  curl, 8 ranges at once  %8.0f MB/s  (x%.2f)\n", c8, c1 > 0 ? c8 / c1 : 0);
  std::printf("  kvbackup, 1 connection  %8.0f MB/s  (x%.2f)\n", o1, c1 > 0 ? o1 / c1 : 0);
  std::printf("  kvbackup, 4 connections %8.0f MB/s  (x%.2f)\n", o4, c1 > 0 ? o4 / c1 : 0);
  std::printf("  kvbackup, 8 connections %8.0f MB/s  (x%.2f)\n", o8, c1 > 0 ? o8 / c1 : 0);
  std::printf("  kvbackup via port-forward, 1 connection  %8.0f MB/s  (x%.2f of kvbackup direct)\n", p1, o1 > 0 ? p1 / o1 : 0);
  std::printf("  kvbackup via port-forward, 4 connections %8.0f MB/s  (x%.2f of kvbackup direct)\n", p4, o4 > 0 ? p4 / o4 : 0);
  return c1 > 0 && o4 > 0 && p4 > 0 ? 0 : 1;
}
