// CdiUpload: CDI's upload path as the test cluster simulates it (upstream
// pkg/uploadproxy, pkg/uploadserver, doc/upload.md; docs/testcluster.md
// "CDI upload"):
//
//   - CDIConfig `config` (cdi.kubevirt.io/v1beta1, cluster-scoped) with
//     status.uploadProxyURL = "127.0.0.1:<port>" (a host, no scheme, as
//     upstream writes it);
//   - a DataVolume with `source.upload: {}` gets its claim (owned by the
//     DataVolume, annotated cdi.kubevirt.io/storage.upload.target) and, once
//     the claim is bound, phase UploadReady (claim annotations
//     cdi.kubevirt.io/storage.pod.ready=true, .../storage.pod.phase=Running);
//     a WaitForFirstConsumer class without the annotation
//     cdi.kubevirt.io/storage.bind.immediate.requested stays
//     WaitForFirstConsumer;
//   - UploadTokenRequest create (upload.cdi.kubevirt.io/v1beta1, spec.pvcName)
//     answers status.token (valid 5 minutes, checked when a request starts);
//     nothing is stored, as upstream's aggregated API stores nothing;
//   - the upload proxy (its own HTTPS listener, certificate from the cluster
//     CA): POST /v1beta1/upload and /v1beta1/upload-async with
//     `Authorization: Bearer <token>`, raw or gzip-compressed raw bytes
//     written into the claim's file as they arrive (never held in memory;
//     all-zero blocks left as holes). No Authorization 400, bad token 401,
//     claim not ready or missing 503, a second upload while one runs 503,
//     one after completion 409, an image larger than the claim 400, a body
//     cut short 500 and the claim ready again (CDI cannot resume: the next
//     upload starts from byte 0). Then the DataVolume is Succeeded 100.0%.
//
// Threads: everything but handle() runs on the loop thread; handle() runs on
// the proxy's connection threads and reaches the state through run_sync.
#pragma once

#include "testcluster/cluster.h"
#include "testcluster/net/stream_server.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace kvb::testcluster {

namespace res {
extern const kube::ResourceRef kCdiConfigs;           // cdi.kubevirt.io/v1beta1, cluster-scoped (defined in registry.cpp)
extern const kube::ResourceRef kUploadTokenRequests;  // upload.cdi.kubevirt.io/v1beta1
}  // namespace res

// Where uploaded bytes go: the file behind a bound claim (loop thread).
struct UploadVolumes {
  std::function<Result<std::filesystem::path>(const std::string& ns, const std::string& claim, int64_t size)> file;
  std::function<void(const std::string& ns, const std::string& claim)> written;  // the file changed
};

class CdiUpload {
 public:
  CdiUpload(Cluster& c, UploadVolumes volumes);
  ~CdiUpload();

  // Starts the proxy's listener and writes CDIConfig `config` (loop thread
  // must be running; not called on it).
  Status start(const KeyPair& ca);
  void stop();
  std::string proxy_url() const;  // https://127.0.0.1:PORT

  void on_change(const StoreEvent& e);
  // POST .../uploadtokenrequests (loop thread).
  ServerResponse token_request(const std::string& ns, const boost::json::object& body);
  // Test hook (any thread): the next `count` uploads break the connection
  // after `after_bytes` bytes of the body (an upload pod restarting).
  void break_uploads(int count, uint64_t after_bytes);
  // Test hook (any thread): while held, an accepted upload waits before it
  // reads a byte of the body (a client can be killed mid-upload).
  void hold_uploads(bool held);
  int uploads_started() const { return started_; }

 private:
  enum class UploadState { kNotReady, kReady, kUploading, kDone };
  struct Token {
    std::string ns, claim;
    std::chrono::steady_clock::time_point expires;
  };
  struct Begin {
    int status = 0;
    std::string message;
    std::string ns, claim;
    std::filesystem::path file;
    int64_t size = 0;
  };

  ServerResponse handle(const StreamRequest& req, BodyReader& body);
  Begin begin(const std::string& token);
  void finish(const std::string& ns, const std::string& claim, bool ok, uint64_t bytes, const std::string& why);
  void claim_changed(const std::string& ns, const std::string& name);
  void create_claim_for(const std::string& ns, const std::string& dv);
  void set_dv_status(const std::string& ns, const std::string& dv, const std::string& phase, const std::string& progress);

  Cluster& c_;
  UploadVolumes volumes_;
  std::unique_ptr<StreamServer> server_;
  uint16_t port_ = 0;
  std::map<std::string, Token> tokens_;         // loop thread
  std::map<std::string, UploadState> states_;  // "ns/claim", loop thread
  std::atomic<int> break_count_{0};
  std::atomic<uint64_t> break_after_{0};
  std::atomic<int> started_{0};
  std::mutex hold_mu_;
  std::condition_variable hold_cv_;
  bool held_ = false, stopping_ = false;
};

// The claims' files of the cluster's VolumeStore (storage/volume_store.h).
UploadVolumes store_upload_files(Cluster& c);

// The cluster's CDI upload: made by install() when the cluster starts (loop
// thread); uninstall() (not on the loop thread, before the loop stops) stops
// its listener and destroys it on the loop thread. find() is nullptr outside
// that span; cdi_upload() is for callers that know it is installed (tests).
// Kept beside the Cluster rather than in it so that cluster.h stays as it is
// (a member would do as well).
void install_cdi_upload(Cluster& c);
void uninstall_cdi_upload(Cluster& c);
CdiUpload* find_cdi_upload(Cluster& c);
CdiUpload& cdi_upload(Cluster& c);

}  // namespace kvb::testcluster
