// CDI upload, the client side (upstream doc/upload.md): how bytes get into a
// claim of a cluster that never had them, with only what a real cluster with
// CDI offers:
//   1. a DataVolume with `source.upload: {}` (its claim: same name, size,
//      storage class, volume mode and access modes given; for a
//      WaitForFirstConsumer class the annotation
//      cdi.kubevirt.io/storage.bind.immediate.requested);
//   2. wait for phase UploadReady;
//   3. an UploadTokenRequest (upload.cdi.kubevirt.io/v1beta1) for the claim:
//      status.token, to be sent as `Authorization: Bearer`;
//   4. POST the raw bytes to <uploadProxyURL>/v1beta1/upload-async
//      (CDIConfig `config` status.uploadProxyURL, a host or a URL);
//   5. wait for phase Succeeded.
// Facts: one POST per upload pod; a concurrent one gets 503, one after
// completion 409; CDI cannot resume (a failed upload is sent again whole).
//
// Invariant: the token is a Secret: never in an error or a record.
// Threads: free functions; any thread.
#pragma once

#include "common/error.h"
#include "common/secret.h"
#include "kube/client.h"

#include <boost/json/object.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

namespace kvb::kubevirt {

extern const kube::ResourceRef kCdiConfigs;           // cdi.kubevirt.io/v1beta1, cluster-scoped
extern const kube::ResourceRef kUploadTokenRequests;  // upload.cdi.kubevirt.io/v1beta1

inline constexpr const char* kUploadAsyncPath = "/v1beta1/upload-async";
inline constexpr const char* kAnnBindImmediate = "cdi.kubevirt.io/storage.bind.immediate.requested";

struct UploadVolume {
  std::string ns, name;       // the DataVolume and its claim
  uint64_t bytes = 0;         // the claim's size (at least the image's)
  std::string storage_class;  // empty: the cluster's default
  std::string volume_mode;    // Filesystem or Block; empty: the class's default
  std::vector<std::string> access_modes;  // empty: ReadWriteOnce
  bool wait_for_first_consumer = false;   // the class binds late: ask CDI to bind now
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
};

// The DataVolume object for an upload.
boost::json::object upload_datavolume(const UploadVolume& v);

// https://<host> from CDIConfig `config` status.uploadProxyURL (a scheme is
// added when the status gives a bare host, as virtctl does); an error that
// says CDI is missing or has no upload proxy URL, and how to give one.
Result<std::string> upload_proxy_url(kube::Client& c);

// An upload token for the claim (UploadTokenRequest create).
Result<Secret> request_upload_token(kube::Client& c, const std::string& ns, const std::string& claim);

// Waits until the DataVolume's phase is one of `phases`; Failed (or a
// timeout) is an error naming the DataVolume and its last phase.
Result<boost::json::object> wait_datavolume_phase(std::shared_ptr<kube::Client> c, const std::string& ns, const std::string& name,
                                                  const std::vector<std::string>& phases, std::chrono::milliseconds timeout,
                                                  std::stop_token stop = {});

}  // namespace kvb::kubevirt
