#include "restore/upload.h"

#include "common/hex.h"
#include "common/sanitize.h"
#include "kube/object.h"
#include "kubevirt/cdi_upload.h"
#include "net/http_transport.h"
#include "repo/repository.h"
#include "restore/side_digest.h"

#include <chrono>
#include <fstream>
#include <sstream>

namespace kvb::restore {

namespace {

struct Attempt {
  Status status = ok();
  bool retry = false;  // worth sending again from byte 0
};

class Uploader : public VolumeUploader {
 public:
  Uploader(std::shared_ptr<kube::Client> client, std::shared_ptr<repo::Repository> repository, RestoreSpec spec, std::string display,
           std::string prefix, std::unique_ptr<net::HttpTransport> transport)
      : client_(std::move(client)), repo_(std::move(repository)), spec_(std::move(spec)), display_(std::move(display)),
        prefix_(std::move(prefix)), transport_(std::move(transport)) {}

  Status upload(const std::string& ns, const std::string& claim, const record::DataCopyRecord& copy, ClaimRecord& rec,
                std::stop_token stop) override {
    std::string dv = ns + "/" + claim;
    auto snap = repo_->find(copy.repository_snapshot);
    if (!snap) return snap.error().with_context("repository snapshot " + copy.repository_snapshot + " (" + copy.series + ")");
    if (snap->size != copy.bytes) {
      return Error(Errc::kDamaged, "repository snapshot " + snap->id + " holds " + std::to_string(snap->size) +
                                       " bytes; the backup recorded " + std::to_string(copy.bytes));
    }
    Stopwatch clock;
    auto ready = kubevirt::wait_datavolume_phase(client_, ns, claim, {"UploadReady", "Succeeded"}, spec_.bind_timeout, stop);
    add_millis(rec.millis, "uploadReady", clock.lap());
    if (!ready) return ready.error();
    if (kube::str_at(*ready, {"status", "phase"}) == "Succeeded") return ok();  // an interrupted run of this restore uploaded it
    std::string first_failure;
    for (int attempt = 1; attempt <= 2; ++attempt) {
      rec.upload_attempts = attempt;
      auto a = send(ns, claim, *snap, copy, rec, stop);
      if (a.status) break;
      if (!a.retry || attempt == 2 || stop.stop_requested()) {
        std::string msg = a.status.error().message;
        if (!first_failure.empty()) msg = "sent twice from the start; first: " + first_failure + "; then: " + msg;
        return Error(a.status.error().code, "upload to DataVolume " + dv + ": " + msg);
      }
      first_failure = a.status.error().message;
      // CDI cannot resume: the next attempt starts from byte 0 once the upload server is ready again.
      clock.lap();
      auto again = kubevirt::wait_datavolume_phase(client_, ns, claim, {"UploadReady"}, spec_.bind_timeout, stop);
      add_millis(rec.millis, "uploadReady", clock.lap());
      if (!again) return again.error();
    }
    clock.lap();
    auto done = kubevirt::wait_datavolume_phase(client_, ns, claim, {"Succeeded"}, spec_.upload_timeout, stop);
    add_millis(rec.millis, "succeeded", clock.lap());
    if (!done) return done.error();
    return ok();
  }

 private:
  Attempt send(const std::string& ns, const std::string& claim, const repo::Snapshot& snap, const record::DataCopyRecord& copy,
               ClaimRecord& rec, std::stop_token stop) {
    Stopwatch clock;
    auto token = kubevirt::request_upload_token(*client_, ns, claim);
    add_millis(rec.millis, "token", clock.lap());
    if (!token) return {token.error(), false};
    net::HttpRequest req;
    req.method = "POST";
    req.target = prefix_ + kubevirt::kUploadAsyncPath;
    req.headers = {{"Authorization", "Bearer " + token->reveal()}, {"Content-Type", "application/octet-stream"}};
    SideDigest sha;  // hashed on its own thread while the same bytes are sent
    uint64_t sent = 0;
    Status source_failed = ok();  // the repository or a stop, not the network
    auto start = std::chrono::steady_clock::now();
    auto res = transport_->exchange_streamed(req, snap.size, [&](const net::BodyWriter& write) -> Status {
      repo::GetOptions o;
      o.workers = 4;
      auto st = repo_->read(snap, [&](std::span<const uint8_t> bytes) -> Status {
        if (stop.stop_requested()) return Error(Errc::kCancelled, "interrupted");
        sha.begin(bytes);
        Status written = write(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
        sha.end();  // the bytes stay valid until hashed
        KVB_CHECK(written);
        sent += bytes.size();
        return ok();
      }, o);
      if (!st && st.error().code != Errc::kTransport && st.error().code != Errc::kTimeout) source_failed = st;
      return st;
    });
    add_millis(rec.millis, "transfer", clock.lap());
    if (!source_failed) return {source_failed, false};
    if (!res) {
      bool retry = res.error().code == Errc::kTransport || res.error().code == Errc::kTimeout;
      return {Error(res.error().code, redact(res.error().message, *token) + " (" + std::to_string(sent) + " of " +
                                          std::to_string(snap.size) + " bytes sent)"),
              retry};
    }
    if (res->status != 200) {
      std::string body = sanitize_foreign(redact(res->body.substr(0, 300), *token));
      std::string what = "the upload proxy " + display_ + " answered " + std::to_string(res->status) + (body.empty() ? "" : ": " + body);
      if (res->status == 401) what += " (the upload token was refused)";
      if (res->status == 409) what += " (the DataVolume was already uploaded)";
      return {Error(res->status >= 500 ? Errc::kTransport : Errc::kInvalidArgument, what), res->status >= 500};
    }
    rec.upload_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
    rec.sha256 = sha.hex();
    rec.uploaded_bytes = sent;
    if (!copy.sha256.empty() && rec.sha256 != copy.sha256) {
      return {Error(Errc::kDamaged, "the bytes sent have SHA-256 " + rec.sha256 + "; the backup recorded " + copy.sha256), false};
    }
    return {ok(), false};
  }

  std::shared_ptr<kube::Client> client_;
  std::shared_ptr<repo::Repository> repo_;
  RestoreSpec spec_;
  std::string display_, prefix_;
  std::unique_ptr<net::HttpTransport> transport_;
};

}  // namespace

Status check_repository_snapshots(repo::Repository& repository, const std::vector<std::pair<std::string, std::string>>& ids) {
  for (const auto& [id, where] : ids) {
    auto s = repository.find(id);
    if (!s) return s.error().with_context(where + ": repository snapshot " + id);
  }
  return ok();
}

Result<std::unique_ptr<VolumeUploader>> make_volume_uploader(std::shared_ptr<kube::Client> client,
                                                             std::shared_ptr<repo::Repository> repository, const RestoreSpec& spec) {
  std::string url = spec.upload_proxy_url;
  if (url.empty()) {
    KVB_TRY(url, kubevirt::upload_proxy_url(*client));
  } else if (url.find("://") == std::string::npos) {
    url = "https://" + url;
  }
  while (!url.empty() && url.back() == '/') url.pop_back();
  auto scheme_end = url.find("://");
  auto path_start = url.find('/', scheme_end + 3);
  std::string endpoint = path_start == std::string::npos ? url : url.substr(0, path_start);
  std::string prefix = path_start == std::string::npos ? "" : url.substr(path_start);
  net::TransportOptions o;
  o.trust_hint = "; --upload-proxy-ca names the CA of the upload proxy";
  o.request_timeout = std::chrono::milliseconds(120'000);
  if (!spec.upload_proxy_ca.empty()) {
    std::ifstream in(spec.upload_proxy_ca);
    if (!in) return Error(Errc::kInvalidArgument, "--upload-proxy-ca " + spec.upload_proxy_ca + ": cannot be read");
    std::stringstream ss;
    ss << in.rdbuf();
    o.ca_pem = ss.str();
    if (o.ca_pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
      return Error(Errc::kInvalidArgument, "--upload-proxy-ca " + spec.upload_proxy_ca + ": no PEM certificate in it");
    }
  }
  auto transport = net::HttpTransport::create(endpoint, o);
  if (!transport) return transport.error().with_context("upload proxy " + url);
  std::string display = (*transport)->display();
  return std::unique_ptr<VolumeUploader>(
      new Uploader(std::move(client), std::move(repository), spec, display, prefix, std::move(*transport)));
}

}  // namespace kvb::restore
