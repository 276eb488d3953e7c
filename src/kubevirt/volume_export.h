// VolumeExport: one claim exported with KubeVirt's VirtualMachineExport
// (export.kubevirt.io/v1beta1), the way a real cluster offers a volume's bytes
// to a client outside it: kvbackup creates the token Secret (key `token`) and
// the export naming it, waits for phase Ready, and reads the raw link
// (disk.img: HTTP ranges) of the claim from status.links.external.
//
// Facts it relies on (upstream pkg/storage/export): a claim mounted by a pod
// keeps the export Pending; raw is offered for Block claims and claims with
// CDI's kubevirt content type; the exporter answers the token in the header
// x-kubevirt-export-token; links.external exists only where an Ingress or
// Route reaches virt-exportproxy; without it, links.internal names the
// Service virt-export-<name> (443 -> the exporter pod's 8443), which a client
// outside the cluster reaches by port-forward to the pod (as virtctl's
// --port-forward does).
//
// Invariant: the token never appears in errors; remove() deletes both objects
// and treats "already gone" as success.
//
// Threads: free functions; any thread.
#pragma once

#include "common/error.h"
#include "kube/client.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stop_token>
#include <string>

namespace kvb::kubevirt {

struct ExportRequest {
  std::string ns;
  std::string name;   // of the VirtualMachineExport; the Secret is <name>-token
  std::string claim;  // the PersistentVolumeClaim exported
  std::map<std::string, std::string> labels;
  std::string ttl = "2h";
};

struct RawLink {
  std::string url;     // https://.../volumes/<claim>/disk.img
  std::string ca_pem;  // links.external.cert (or links.internal.cert): the CA to trust for url
  std::string token;   // for the x-kubevirt-export-token header
  // Without links.external (no Ingress or Route): the internal link
  // (https://virt-export-<name>.<ns>.svc/volumes/...), reached through a
  // port-forward to the exporter pod's port.
  bool external = true;
  std::string exporter_pod;  // status.serviceName: upstream names the pod like its Service
};

inline constexpr uint16_t kExporterPort = 8443;  // the exporter pod's port (its Service's 443)

inline constexpr const char* kExportTokenHeader = "x-kubevirt-export-token";

// Creates the token Secret and the export (an existing one of the same name
// is an error: the caller names them uniquely). Returns the token.
Result<std::string> create_volume_export(kube::Client& c, const ExportRequest& req);

// Waits until the export is Ready and offers the raw format of the claim on
// links.external, else on links.internal (external false); a timeout or an export that says why it cannot be Ready
// (Skipped, a missing claim) is an error naming the export and its last status.
// It watches the export (list and watch, by name): woken by the change that
// makes it Ready, not by a poll interval.
Result<RawLink> wait_raw_link(std::shared_ptr<kube::Client> c, const ExportRequest& req, const std::string& token,
                              std::chrono::milliseconds timeout, std::stop_token stop);

// Deletes the export and its token Secret (absent is fine).
Status remove_volume_export(kube::Client& c, const std::string& ns, const std::string& name);

}  // namespace kvb::kubevirt
