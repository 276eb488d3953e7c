// SnapshotMetadataServer: the test cluster's changed-block tracking for one
// CSI driver (KEP-3314): what the external-snapshot-metadata sidecar and the
// driver's SnapshotMetadata service do together, from the real bytes of the
// storage snapshots (storage/volume_store.h).
//
//   - SnapshotMetadataService `<driver>` (cbt.storage.k8s.io/v1beta1,
//     cluster-scoped) with spec.address 127.0.0.1:<port>, spec.caCert (the
//     cluster CA, base64 in JSON as Go's []byte) and spec.audience;
//   - a gRPC server with TLS (a certificate from the cluster CA for
//     127.0.0.1) answering GetMetadataDelta(base_snapshot_id = the base's CSI
//     handle, target_snapshot_name) and GetMetadataAllocated(snapshot_name):
//     FIXED_LENGTH blocks of kBlockSize bytes, from comparing the two
//     snapshot files block by block (a block that is a hole in both is
//     unchanged without reading) or from the file's data extents; resumable
//     from starting_offset; max_results honoured (default 256 per message);
//   - authentication: security_token must be a token the cluster's
//     TokenRequest issued for the CR's audience as the server started (else
//     UNAUTHENTICATED); a missing target snapshot, one of another driver, or
//     a base handle whose storage snapshot is gone is NOT_FOUND;
//   - a fault for tests: break_next_stream() cuts one stream short.
//
// Threads: gRPC's; object lookups go through the loop (run_sync); the
// snapshot files are only read.
#pragma once

#include "common/error.h"

#include <cstdint>
#include <memory>
#include <string>

namespace kvb::testcluster {

class Cluster;

class SnapshotMetadataServer {
 public:
  static constexpr uint64_t kBlockSize = 64 << 10;

  // Listens on 127.0.0.1:0; the caller creates the CR (cr()).
  static Result<std::unique_ptr<SnapshotMetadataServer>> start(Cluster& c, std::string driver, std::string audience);
  ~SnapshotMetadataServer();

  std::string address() const;
  const std::string& driver() const;
  const std::string& audience() const;
  // Calls answered so far (any outcome).
  uint64_t calls() const;
  // Fault: the next call sends one message of at most `ranges` ranges and
  // then ends with UNAVAILABLE (a sidecar restarting mid-stream); clients
  // resume with starting_offset.
  void break_next_stream(int ranges);
  void stop();

  struct Impl;

 private:
  explicit SnapshotMetadataServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvb::testcluster
