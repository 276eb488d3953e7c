// kvbackup-testcluster: a Kubernetes API server simulator with KubeVirt, CDI and
// CSI snapshot behaviour, for kvbackup's tests and demo (docs/testcluster.md).
#include "common/allocator.h"
#include "common/atomic_file.h"
#include "testcluster/cluster.h"

#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <pthread.h>

int main(int argc, char** argv) {
  kvb::tune_allocator_for_streaming();
  CLI::App app{"kvbackup-testcluster: a simulated Kubernetes cluster with KubeVirt and CSI snapshots"};
  std::string scenario_file, listen = "127.0.0.1:0", kubeconfig_out, state_dir, token, guest_image;
  app.add_option("--scenario", scenario_file, "Scenario YAML file")->required();
  app.add_option("--listen", listen, "Address to listen on (host:port; port 0 picks a free one)");
  app.add_option("--kubeconfig-out", kubeconfig_out, "Write a kubeconfig for this cluster here once it is ready");
  app.add_option("--state-dir", state_dir, "Directory for container working directories (default: a new one in /tmp)");
  app.add_option("--token", token, "Admin bearer token (default: random)");
  app.add_option("--guest-image", guest_image,
                 "scripts/guest-image's cache, for VMs with guest: qemu (default: $KVB_GUEST_CACHE, else the build's)");
  CLI11_PARSE(app, argc, argv);

  // Block the stop signals in every thread; the main thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto scenario = kvb::testcluster::load_scenario(scenario_file);
  if (!scenario) {
    std::fprintf(stderr, "kvbackup-testcluster: %s\n", scenario.error().message.c_str());
    return 2;
  }
  kvb::testcluster::ClusterOptions options;
  options.listen = listen;
  options.state_dir = state_dir;
  options.admin_token = token;
  options.guest_image_dir = guest_image;
  auto cluster = kvb::testcluster::Cluster::start(std::move(*scenario), options);
  if (!cluster) {
    std::fprintf(stderr, "kvbackup-testcluster: %s\n", cluster.error().describe().c_str());
    return 1;
  }
  if (!kubeconfig_out.empty()) {
    if (auto st = kvb::write_file_atomic(kubeconfig_out, (*cluster)->kubeconfig(), 0600); !st) {
      std::fprintf(stderr, "kvbackup-testcluster: %s\n", st.error().message.c_str());
      return 1;
    }
  }
  std::printf("kvbackup-testcluster ready at %s\n", (*cluster)->url().c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::fprintf(stderr, "kvbackup-testcluster: %s received, stopping\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  (*cluster)->stop();
  return 0;
}
