// ExportServer: the test cluster's stand-in for KubeVirt's virt-exportproxy
// behind an Ingress: a separate HTTPS listener with its own threads (the data
// path never touches the API server's event loop) serving the external links
// of Ready VirtualMachineExports:
//   /api/export.kubevirt.io/v1beta1/namespaces/<ns>/virtualmachineexports/
//       <name>/volumes/<claim>/disk.img      raw, Range as http.ServeContent
//       <name>/volumes/<claim>/disk.img.gz   gzip stream, no Range
// The token comes in the x-kubevirt-export-token header or query parameter
// and is compared in constant time; a wrong or missing token is 401.
// Bodies are read from the claim's file with pread in 1 MiB blocks.
//
// The same server plays the exporter pods (virt-export-<name>, port 8443) for
// the test cluster's port-forward: connect_pod() hands out one connection.
//
// Fault: arm_restart(N) closes every export connection once N more body bytes
// were served (upstream recreates the exporter pod on certificate rotation),
// so clients must resume with Range requests.
//
// Invariants: publish/withdraw/arm_restart/stats are thread-safe (the
// controller calls them from the loop thread; connections read the table
// under a mutex); a withdrawn export answers 404 to new requests at once.
#pragma once

#include "common/error.h"
#include "testcluster/net/certs.h"

#include <boost/json/object.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

namespace kvb::testcluster {

struct ExportedVolume {
  std::filesystem::path file;
};

struct ExportEntry {
  std::string token;
  std::map<std::string, ExportedVolume> volumes;  // claim -> its file
};

class ExportServer {
 public:
  // Listens on 127.0.0.1:0 with a certificate issued by `ca`.
  static Result<std::unique_ptr<ExportServer>> start(const KeyPair& ca, unsigned threads = 4);
  ~ExportServer();

  std::string url() const;  // https://127.0.0.1:PORT
  // The path prefix of an export's volumes (".../<name>/volumes/").
  static std::string volumes_path(const std::string& ns, const std::string& name);

  void publish(const std::string& ns, const std::string& name, ExportEntry entry);
  void withdraw(const std::string& ns, const std::string& name);
  // A connection to the exporter pod's port 8443 of a published export (the
  // port-forward's pod side): the returned stream socket (the caller owns it)
  // speaks TLS with the pod's certificate for virt-export-<name>.<ns>.svc,
  // issued by the export CA, and serves /volumes/<claim>/disk.img[.gz] of
  // that export only. The restart fault closes it like any export connection.
  Result<int> connect_pod(const std::string& ns, const std::string& name);
  // Closes every export connection once `after_bytes` more bytes were served,
  // `times` times (0: every `after_bytes`, until disarm).
  void arm_restart(int64_t after_bytes, int64_t times);
  // {requests: [{method, export, claim, format, range, status, bytes, restarted}], restarts}
  boost::json::object stats() const;
  void clear_stats();
  void stop();

  struct Impl;

 private:
  explicit ExportServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace kvb::testcluster
