// ExportController: KubeVirt's VirtualMachineExport controller
// (export.kubevirt.io/v1beta1, upstream pkg/storage/export) as the test
// cluster simulates it, with the ExportServer standing in for the exporter
// pods behind virt-exportproxy and an Ingress.
//
// - Sources: PersistentVolumeClaim (Pending with reason inUse while a running
//   pod mounts it) and VirtualMachine (its claims; Pending while it runs).
//   Any other kind (a VolumeSnapshot, say) never gets Ready: phase Pending
//   with a Ready=False condition saying the source kind is not supported.
// - Token: the Secret named by spec.tokenSecretRef (key `token`), else the
//   controller makes export-token-<name> (20 random characters, owned by the
//   export). ttlDuration (default 2h): the export is deleted at
//   status.ttlExpirationTime.
// - Ready: status.links.external (the export server's URL and the CA that
//   signs its certificate) with raw and gzip formats for Block claims and
//   claims with CDI's kubevirt content type (others: dir and tar.gz, not
//   served), links.internal with the svc host, serviceName, tokenSecretRef,
//   conditions Ready and PVCReady. A source that goes away after Ready turns
//   the export Terminated. The fault export-no-ingress leaves links.external
//   out (a cluster without an Ingress or Route to virt-exportproxy).
// - Faults (decided once per export, at its first reconcile; `count` counts exports): export-unreachable
//   publishes links.external at a port where nothing listens (a socket bound
//   but never listening: connections are refused); export-wrong-token makes
//   the exporter expect a token other than the Secret's (every request 401).
// - Exporter pod: while Ready, pod virt-export-<name> (label
//   kubevirt.io.virt-export-service=virt-export-<name>, owned by the export,
//   container port 8443) exists; pods/portforward to it reaches the export
//   server (port_forward_service.h). It mounts no claim here, so it never
//   makes its own export "in use".
//
// Invariant: the server publishes an export exactly while its phase is Ready;
// everything runs on the cluster's loop thread except the server's own threads.
#pragma once

#include "testcluster/cluster.h"
#include "testcluster/export/export_server.h"

#include <map>
#include <memory>
#include <set>
#include <string>

namespace kvb::testcluster {

class ExportController {
 public:
  explicit ExportController(Cluster& c);
  ~ExportController();

  void on_change(const StoreEvent& e);
  // The fault exportRestart: every connection closed after `after_bytes` more bytes.
  void arm_restart(int64_t after_bytes, int64_t times);
  // GET /testcluster/v1/exports: the server's request log and restarts.
  boost::json::object stats() const;
  void clear_stats();
  ExportServer* server() { return server_.get(); }

 private:
  void reconcile(const std::string& ns, const std::string& name);
  void reconcile_namespace(const std::string& ns);
  std::string ensure_token(const Object& vme, const std::string& ns, const std::string& name, std::string& secret_name);
  bool claim_in_use(const std::string& ns, const std::string& claim) const;
  static std::string exporter_pod_name(const std::string& name);
  void ensure_exporter_pod(const std::string& ns, const std::string& name, const std::string& uid);
  void remove_exporter_pod(const std::string& ns, const std::string& name);

  Cluster& c_;
  std::unique_ptr<ExportServer> server_;
  std::string server_error_;
  std::set<std::string> exports_;                                // "ns/name"
  std::map<std::string, std::shared_ptr<Timer>> ttl_timers_;     // "ns/name"
  struct InjectedFaults {
    bool unreachable = false, wrong_token = false;
  };
  std::map<std::string, InjectedFaults> faulted_;               // "ns/name"
  int closed_fd_ = -1;                                           // bound, never listening
  std::string closed_url_;                                       // https://127.0.0.1:<its port>
};

}  // namespace kvb::testcluster
