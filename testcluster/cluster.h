// Cluster: one simulated Kubernetes cluster with KubeVirt, CDI and a CSI
// snapshot driver, served over HTTPS (see docs/testcluster.md).
//
// It owns the event loop, the object store, the oracle timeline, the fault
// table and the simulated controllers; everything runs on the loop thread.
#pragma once

#include "common/error.h"
#include "testcluster/faults.h"
#include "testcluster/net/certs.h"
#include "testcluster/net/event_loop.h"
#include "testcluster/net/http_server.h"
#include "testcluster/registry.h"
#include "testcluster/sa_tokens.h"
#include "testcluster/scenario.h"
#include "testcluster/store.h"
#include "testcluster/timeline.h"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace kvb::testcluster {

class KubeVirt;
class Csi;
class Cdi;
class ExecService;
class Api;
class QemuVms;
class CoreControllers;
class ExportController;
class SnapshotMetadataServer;

struct ClusterOptions {
  std::string listen = "127.0.0.1:0";
  std::filesystem::path state_dir;  // per-container working directories for real shell execs
  std::string admin_token;          // empty: a random one
  std::filesystem::path guest_image_dir;  // scripts/guest-image's cache; empty: $KVB_GUEST_CACHE or the build's
};

class Cluster {
 public:
  static Result<std::unique_ptr<Cluster>> start(Scenario scenario, ClusterOptions options);
  ~Cluster();

  // Connection details for clients.
  std::string url() const;
  const KeyPair& ca() const { return ca_; }
  const std::string& admin_token() const { return admin_token_; }
  std::string kubeconfig() const;  // YAML with CA data and the admin token

  void stop();

  // Components (loop thread only).
  EventLoop& loop() { return loop_; }
  Store& store() { return *store_; }
  const Registry& registry() const { return registry_; }
  Registry& registry() { return registry_; }  // the CRD controller serves and unserves custom resources
  Timeline& timeline() { return timeline_; }
  Faults& faults() { return faults_; }
  const Scenario& scenario() const { return scenario_; }
  const ClusterOptions& options() const { return options_; }
  KubeVirt& kubevirt() { return *kubevirt_; }
  Csi& csi() { return *csi_; }
  Cdi& cdi() { return *cdi_; }
  ExecService& exec() { return *exec_; }
  QemuVms& qemu() { return *qemu_; }
  ExportController& exports() { return *exports_; }
  // Tokens TokenRequest issued (thread-safe).
  ServiceAccountTokens& sa_tokens() { return sa_tokens_; }
  // The changed-block tracking servers, one per driver with snapshotMetadata.
  const std::vector<std::unique_ptr<SnapshotMetadataServer>>& snapshot_metadata() const { return cbt_; }
  const ResourceInfo& resource(const kube::ResourceRef& ref) const;

  // Records a Kubernetes Event about an object (reason, message, type Normal/Warning).
  void record_event(const Object& about, const std::string& type, const std::string& reason, const std::string& message);

 private:
  Cluster(Scenario scenario, ClusterOptions options);
  Status populate();

  Scenario scenario_;
  ClusterOptions options_;
  Registry registry_;
  EventLoop loop_;
  std::unique_ptr<Store> store_;
  Timeline timeline_;
  Faults faults_;
  std::unique_ptr<KubeVirt> kubevirt_;
  std::unique_ptr<Csi> csi_;
  std::unique_ptr<Cdi> cdi_;
  std::unique_ptr<ExecService> exec_;
  std::unique_ptr<CoreControllers> core_;
  std::unique_ptr<ExportController> exports_;
  std::unique_ptr<Api> api_;
  std::unique_ptr<QemuVms> qemu_;  // real guests; closed (thawed, quit) at stop()
  KeyPair ca_;
  std::string admin_token_;
  std::unique_ptr<HttpServer> server_;
  ServiceAccountTokens sa_tokens_;
  std::vector<std::unique_ptr<SnapshotMetadataServer>> cbt_;
};

}  // namespace kvb::testcluster
