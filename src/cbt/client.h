// A client of the Kubernetes SnapshotMetadata service (KEP-3314, changed
// block tracking): the gRPC API that a CSI driver's external-snapshot-metadata
// sidecar serves at the address of its SnapshotMetadataService
// (cbt.storage.k8s.io/v1beta1, named after the driver).
//
// What callers see is plain C++: no gRPC or protobuf type crosses this
// header (they stay in src/cbt/client.cpp). The connection is TLS verified
// against the CR's spec.caCert and the address's host; the security token
// (a ServiceAccount token for the CR's spec.audience) travels in the request
// and is never logged.
//
// Invariants of a returned Ranges: sorted, not overlapping, each non-empty
// and inside [0, capacity). A stream that breaks (UNAVAILABLE) is resumed
// from the end of the last range received (starting_offset), a few times;
// an unauthenticated, missing or malformed answer is an error naming what
// the service said. A stop request (Ctrl-C) cancels the call in flight
// instead of waiting for its timeout.
#pragma once

#include "common/error.h"
#include "common/secret.h"

#include <chrono>
#include <cstdint>
#include <stop_token>
#include <string>
#include <vector>

namespace kvb::cbt {

struct Endpoint {
  std::string address;  // host:port (the CR's spec.address)
  std::string ca_pem;   // the CR's spec.caCert, decoded
};

struct Range {
  uint64_t offset = 0, length = 0;
  bool operator==(const Range&) const = default;
};

struct Ranges {
  uint64_t capacity = 0;  // volume_capacity_bytes
  std::string block_type;  // FIXED_LENGTH, VARIABLE_LENGTH
  std::vector<Range> ranges;
  size_t messages = 0;  // stream messages received
  size_t resumed = 0;   // times a broken stream was resumed
};

struct Call {
  Endpoint endpoint;
  Secret token;
  std::string ns;
  std::chrono::milliseconds timeout{60'000};  // the whole call, resumes included
  std::stop_token stop;  // a stop request cancels the call at once (Errc::kCancelled)
};

// The ranges that differ between the snapshot whose CSI handle is
// `base_snapshot_id` and the VolumeSnapshot `target_snapshot` (same volume).
Result<Ranges> get_metadata_delta(const Call& call, const std::string& base_snapshot_id, const std::string& target_snapshot);
// The allocated ranges of the VolumeSnapshot `snapshot`.
Result<Ranges> get_metadata_allocated(const Call& call, const std::string& snapshot);

}  // namespace kvb::cbt
