// TestCluster: the simulated cluster (testcluster/) started in-process for a
// test, with a client, a kubeconfig file for kubectl, and the oracle's views.
#pragma once

#include "kube/client.h"
#include "kube/exec.h"
#include "testcluster/cluster.h"
#include "tests/support/test_api_server.h"

#include <boost/json/object.hpp>

#include <memory>
#include <string>

namespace kvb::testing {

class TestCluster {
 public:
  explicit TestCluster(const std::string& scenario_yaml);
  ~TestCluster();

  testcluster::Cluster& cluster() { return *cluster_; }
  kube::RestConfig rest_config() const;
  std::shared_ptr<kube::Client> client() { return client_; }
  const std::filesystem::path& kubeconfig() const { return kubeconfig_; }
  const TempDir& dir() const { return dir_; }

  boost::json::object timeline();
  boost::json::object vms();
  boost::json::object volumes();
  // The byte oracle: /testcluster/v1/volumes with the SHA-256 of the claims
  // and snapshots selected by `query` ("namespace=prod&pvc=db-rootdisk").
  boost::json::object volumes_with_sha256(const std::string& query = {});
  std::string claim_sha256(const std::string& ns, const std::string& claim);
  std::string snapshot_sha256(const std::string& ns, const std::string& volume_snapshot);
  // The export server's request log ({requests, restarts}); clear_exports() empties it.
  boost::json::object exports();
  void clear_exports();
  boost::json::object stats();  // objects, watches, API requests served
  boost::json::object add_fault(const std::string& fault_json);
  void clear_faults();
  // The VM entry of /testcluster/v1/vms (empty object if unknown).
  boost::json::object vm_state(const std::string& ns, const std::string& name);
  // Timeline events of one type (and VM, when given).
  std::vector<boost::json::object> events(const std::string& type, const std::string& vm = {});

  // The launcher pod of a VM, found the reliable way (kubevirt.io/created-by=<VMI uid>).
  std::string launcher_pod(const std::string& ns, const std::string& vm);
  kube::ExecResult exec(const std::string& ns, const std::string& pod, const std::string& container,
                        std::vector<std::string> command);

 private:
  boost::json::object inspect(const std::string& method, const std::string& path, const std::string& body = {});

  TempDir dir_;
  std::unique_ptr<testcluster::Cluster> cluster_;
  std::shared_ptr<kube::Client> client_;
  std::filesystem::path kubeconfig_;
};

// A VirtualMachineExport of one claim, Ready: the object and the token from
// the Secret the export controller made for it (export-token-<name>).
struct ClaimExport {
  boost::json::object vme;
  std::string token;
  // The url of `format` ("raw", "gzip") of the first volume under
  // status.links.<link> ("external" or "internal"); empty when there is none.
  std::string url(const std::string& format, const std::string& link = "external") const;
  std::string ca_pem(const std::string& link = "external") const;  // status.links.<link>.cert
};
// Creates the export `name` of claim ns/claim and waits up to a minute for it to be Ready.
Result<ClaimExport> export_claim(TestCluster& tc, const std::string& ns, const std::string& claim, const std::string& name);

// Runs the real kubectl with KUBECONFIG pointing at `kubeconfig`; nullopt when
// kubectl is not installed.
std::optional<ProcessResult> run_kubectl(const std::filesystem::path& kubeconfig, const std::vector<std::string>& args,
                                         const std::string& stdin_data = {});
bool kubectl_available();

// The kvbackup binary of this build ($KVB_BUILD_DIR, else the configured build directory).
std::string kvbackup_binary();
// Runs kvbackup with --kubeconfig of the cluster and `args`; throws if it cannot be started.
ProcessResult run_kvbackup(const TestCluster& tc, const std::vector<std::string>& args);

}  // namespace kvb::testing
