#include "testcluster/cdi_upload.h"

#include "common/random.h"
#include "common/time.h"
#include "common/writeback.h"
#include "kube/object.h"
#include "testcluster/csi.h"
#include "testcluster/responses.h"
#include "testcluster/storage/volume_store.h"

#include <boost/json.hpp>

#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <regex>
#include <vector>

namespace kvb::testcluster {
namespace json = boost::json;
using kube::resources::kPersistentVolumeClaims;
using kube::resources::kStorageClasses;

namespace {

constexpr const char* kAnnUploadTarget = "cdi.kubevirt.io/storage.upload.target";
constexpr const char* kAnnPodReady = "cdi.kubevirt.io/storage.pod.ready";
constexpr const char* kAnnPodPhase = "cdi.kubevirt.io/storage.pod.phase";
constexpr const char* kAnnImmediate = "cdi.kubevirt.io/storage.bind.immediate.requested";
constexpr auto kTokenLifetime = std::chrono::minutes(5);

std::string key(const std::string& ns, const std::string& name) { return ns + "/" + name; }

json::object& ensure_object(json::value& v) {
  if (!v.is_object()) v.emplace_object();
  return v.as_object();
}

ServerResponse plain(int status, std::string body = {}) {
  ServerResponse r;
  r.status = status;
  if (!body.empty()) r.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
  r.body = std::move(body);
  return r;
}

// Writes an image into a claim's file as it arrives: all-zero 64 KiB blocks
// are skipped (the file starts as holes), nothing beyond the claim's size;
// the data blocks between two holes go out in one pwrite. Writeback starts
// behind the writes (common/writeback.h), as in kvbackup's own restore to a file.
class ImageWriter {
 public:
  ImageWriter(int fd, int64_t size) : fd_(fd), size_(static_cast<uint64_t>(size)) {}
  uint64_t written() const { return offset_; }

  Result<bool> write(const unsigned char* data, size_t n) {
    if (offset_ + n > size_) {
      return Error(Errc::kInvalidArgument, "image size " + std::to_string(offset_ + n) + "+ bytes is larger than the claim (" +
                                               std::to_string(size_) + " bytes)");
    }
    constexpr size_t kBlock = 64 << 10;
    static const std::vector<unsigned char> zeros(kBlock);
    size_t i = 0, run = 0, run_len = 0;  // [run, run + run_len): data blocks not written yet
    while (i < n) {
      size_t len = std::min(kBlock - static_cast<size_t>((offset_ + i) % kBlock), n - i);
      if (std::memcmp(data + i, zeros.data(), len) != 0) {
        if (run_len == 0) run = i;
        run_len += len;
      } else if (run_len > 0) {
        KVB_CHECK(put(data + run, run_len, offset_ + run));
        run_len = 0;
      }
      i += len;
    }
    if (run_len > 0) KVB_CHECK(put(data + run, run_len, offset_ + run));
    offset_ += n;
    writeback_.wrote_up_to(offset_);
    return true;
  }

 private:
  Status put(const unsigned char* data, size_t len, uint64_t at) {
    size_t done = 0;
    while (done < len) {
      ssize_t w = ::pwrite(fd_, data + done, len - done, static_cast<off_t>(at + done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return Error(Errc::kIo, std::string("writing the claim's file: ") + std::strerror(errno));
      done += static_cast<size_t>(w);
    }
    return ok();
  }

 public:

 private:
  int fd_;
  uint64_t size_;
  uint64_t offset_ = 0;
  WritebackBehind writeback_{fd_};
};

}  // namespace

UploadVolumes store_upload_files(Cluster& c) {
  UploadVolumes v;
  v.file = [&c](const std::string& ns, const std::string& claim, int64_t) -> Result<std::filesystem::path> {
    auto& store = c.csi().volume_store();
    if (!store.has_claim(ns, claim)) return Error(Errc::kNotFound, "claim " + ns + "/" + claim + " has no volume (not bound)");
    return store.writable_claim_path(ns, claim);
  };
  v.written = [&c](const std::string& ns, const std::string& claim) { c.csi().volume_store().claim_written(ns, claim); };
  return v;
}

namespace {
std::mutex g_installed_mu;
std::map<const Cluster*, std::unique_ptr<CdiUpload>>& installed() {
  static std::map<const Cluster*, std::unique_ptr<CdiUpload>> m;
  return m;
}
}  // namespace

void install_cdi_upload(Cluster& c) {
  auto u = std::make_unique<CdiUpload>(c, store_upload_files(c));
  std::lock_guard lk(g_installed_mu);
  installed()[&c] = std::move(u);
}

void uninstall_cdi_upload(Cluster& c) {
  CdiUpload* u = find_cdi_upload(c);
  if (!u) return;
  u->stop();  // joins the proxy's threads, which may wait for the loop: not called on it
  // Destroyed on the loop thread: no on_change() or token_request() can be running.
  c.loop().run_sync([&c] {
    std::lock_guard lk(g_installed_mu);
    installed().erase(&c);
  });
}

CdiUpload* find_cdi_upload(Cluster& c) {
  std::lock_guard lk(g_installed_mu);
  auto it = installed().find(&c);
  return it == installed().end() ? nullptr : it->second.get();
}

CdiUpload& cdi_upload(Cluster& c) {
  CdiUpload* u = find_cdi_upload(c);
  if (!u) std::abort();  // only between install and uninstall
  return *u;
}

CdiUpload::CdiUpload(Cluster& c, UploadVolumes volumes) : c_(c), volumes_(std::move(volumes)) {}

CdiUpload::~CdiUpload() { stop(); }

void CdiUpload::stop() {
  {
    std::lock_guard lk(hold_mu_);
    stopping_ = true;
  }
  hold_cv_.notify_all();
  if (server_) server_->stop();
}

void CdiUpload::hold_uploads(bool held) {
  {
    std::lock_guard lk(hold_mu_);
    held_ = held;
  }
  hold_cv_.notify_all();
}

std::string CdiUpload::proxy_url() const { return "https://127.0.0.1:" + std::to_string(port_); }

Status CdiUpload::start(const KeyPair& ca) {
  CertSpec spec;
  spec.common_name = "cdi-uploadproxy";
  spec.dns_names = {"localhost", "cdi-uploadproxy", "cdi-uploadproxy.cdi", "cdi-uploadproxy.cdi.svc"};
  spec.ip_addresses = {"127.0.0.1"};
  auto cert = issue_certificate(ca, spec);
  if (!cert) return cert.error();
  StreamServerOptions o;
  o.cert_pem = cert->cert_pem;
  o.key_pem = cert->key_pem;
  o.handler = [this](const StreamRequest& req, BodyReader& body) { return handle(req, body); };
  auto server = StreamServer::start(std::move(o));
  if (!server) return server.error();
  server_ = std::move(*server);
  port_ = server_->port();
  Status st = ok();
  c_.loop().run_sync([&] {
    Object cfg{{"apiVersion", "cdi.kubevirt.io/v1beta1"},
               {"kind", "CDIConfig"},
               {"metadata", json::object{{"name", "config"}}},
               {"spec", json::object{}},
               {"status", json::object{{"uploadProxyURL", "127.0.0.1:" + std::to_string(port_)},
                                       {"scratchSpaceStorageClass", ""},
                                       {"defaultPodResourceRequirements", json::object{}}}}};
    auto r = c_.store().create(c_.resource(res::kCdiConfigs), "", cfg);
    if (!r && r.error().code != Errc::kAlreadyExists) st = r.error();
  });
  return st;
}

void CdiUpload::break_uploads(int count, uint64_t after_bytes) {
  break_after_ = after_bytes;
  break_count_ = count;
}

void CdiUpload::on_change(const StoreEvent& e) {
  const auto& ref = e.resource->ref;
  json::value obj(e.object);
  std::string ns(kube::namespace_of(obj)), name(kube::name_of(obj));
  if (ref.resource == "datavolumes" && ref.group == "cdi.kubevirt.io") {
    if (!kube::object_at(obj, {"spec", "source", "upload"})) return;
    if (e.type == "ADDED") create_claim_for(ns, name);
    if (e.type == "DELETED") states_.erase(key(ns, name));
  } else if (ref.resource == "persistentvolumeclaims" && e.type != "DELETED") {
    const auto* ann = kube::object_at(obj, {"metadata", "annotations"});
    if (!ann || !ann->contains(kAnnUploadTarget)) return;
    claim_changed(ns, name);
  } else if (ref.resource == "persistentvolumeclaims" && e.type == "DELETED") {
    states_.erase(key(ns, name));
  }
}

void CdiUpload::set_dv_status(const std::string& ns, const std::string& dv, const std::string& phase, const std::string& progress) {
  (void)c_.store().mutate(c_.resource(res::kDataVolumes), ns, dv, [&](Object& o) {
    bool bound = phase != "Pending" && phase != "WaitForFirstConsumer";
    bool done = phase == "Succeeded";
    auto cond = [&](const char* type, bool status, const char* reason) {
      return json::object{{"type", type}, {"status", status ? "True" : "False"}, {"reason", reason},
                          {"lastTransitionTime", format_rfc3339(WallClock::now())}};
    };
    o["status"] = json::object{{"phase", phase},
                               {"progress", progress},
                               {"claimName", dv},
                               {"conditions", json::array{cond("Bound", bound, bound ? "Bound" : "Pending"),
                                                          cond("Ready", done, done ? "Completed" : "TransferRunning"),
                                                          cond("Running", bound && !done, done ? "Completed" : "Pod is running")}}};
  });
}

void CdiUpload::create_claim_for(const std::string& ns, const std::string& name) {
  const Object* dv = c_.store().find(c_.resource(res::kDataVolumes), ns, name);
  if (!dv) return;
  json::value v(*dv);
  const json::object* storage = kube::object_at(v, {"spec", "storage"});
  if (!storage) storage = kube::object_at(v, {"spec", "pvc"});
  json::object spec = storage ? *storage : json::object();
  if (!spec.contains("accessModes")) spec["accessModes"] = json::array{"ReadWriteOnce"};
  json::object annotations{{kAnnUploadTarget, ""}, {kAnnPodReady, "false"}, {kAnnPodPhase, "Pending"}};
  // As CDI copies the DataVolume's contentType (default kubevirt) onto its claim:
  // a kubevirt claim holds disk.img, which an export then offers raw.
  std::string content(kube::str_at(v, {"spec", "contentType"}));
  annotations["cdi.kubevirt.io/storage.contentType"] = content.empty() ? "kubevirt" : content;
  bool immediate = kube::annotation_of(v, kAnnImmediate) == "true";
  if (immediate) annotations[kAnnImmediate] = "true";
  std::string sc(kube::str_at(spec, {"storageClassName"}));
  const Object* cls = sc.empty() ? nullptr : c_.store().find(c_.resource(kStorageClasses), "", sc);
  if (cls && kube::str_at(*cls, {"volumeBindingMode"}) == "WaitForFirstConsumer" && !immediate) {
    states_[key(ns, name)] = UploadState::kNotReady;
    set_dv_status(ns, name, "WaitForFirstConsumer", "N/A");
    return;  // upstream waits for a consumer pod; an upload has none
  }
  // Like CDI: the DataVolume's labels, and app=containerized-data-importer.
  json::object labels{{"app", "containerized-data-importer"}};
  if (const auto* l = kube::object_at(v, {"metadata", "labels"})) {
    for (const auto& [k, val] : *l) labels[k] = val;
  }
  Object pvc{{"apiVersion", "v1"},
             {"kind", "PersistentVolumeClaim"},
             {"metadata", json::object{{"name", name},
                                       {"namespace", ns},
                                       {"annotations", annotations},
                                       {"labels", labels},
                                       {"ownerReferences", json::array{json::object{{"apiVersion", "cdi.kubevirt.io/v1beta1"},
                                                                                   {"kind", "DataVolume"},
                                                                                   {"name", name},
                                                                                   {"uid", kube::uid_of(v)},
                                                                                   {"controller", true},
                                                                                   {"blockOwnerDeletion", true}}}}}},
             {"spec", spec}};
  states_[key(ns, name)] = UploadState::kNotReady;
  set_dv_status(ns, name, "Pending", "N/A");
  (void)c_.store().create(c_.resource(kPersistentVolumeClaims), ns, pvc);
}

void CdiUpload::claim_changed(const std::string& ns, const std::string& name) {
  auto it = states_.find(key(ns, name));
  if (it == states_.end() || it->second != UploadState::kNotReady) return;
  const Object* pvc = c_.store().find(c_.resource(kPersistentVolumeClaims), ns, name);
  if (!pvc || kube::str_at(*pvc, {"status", "phase"}) != "Bound") return;
  it->second = UploadState::kReady;
  (void)c_.store().mutate(c_.resource(kPersistentVolumeClaims), ns, name, [&](Object& o) {
    auto& ann = ensure_object(o["metadata"].as_object()["annotations"]);
    ann[kAnnPodReady] = "true";
    ann[kAnnPodPhase] = "Running";
  });
  set_dv_status(ns, name, "UploadReady", "N/A");
}

ServerResponse CdiUpload::token_request(const std::string& ns, const json::object& body) {
  std::string pvc(kube::str_at(body, {"spec", "pvcName"}));
  if (pvc.empty()) return status_response(422, "UploadTokenRequest.upload.cdi.kubevirt.io is invalid: spec.pvcName: Required value");
  std::string token = random_hex(48);
  tokens_[token] = Token{ns, pvc, std::chrono::steady_clock::now() + kTokenLifetime};
  json::object meta{{"namespace", ns}, {"creationTimestamp", format_rfc3339(WallClock::now())}};
  std::string name(kube::name_of(body));
  if (!name.empty()) meta["name"] = name;
  return json_response(201, json::object{{"apiVersion", "upload.cdi.kubevirt.io/v1beta1"},
                                         {"kind", "UploadTokenRequest"},
                                         {"metadata", meta},
                                         {"spec", json::object{{"pvcName", pvc}}},
                                         {"status", json::object{{"token", token}}}});
}

CdiUpload::Begin CdiUpload::begin(const std::string& token) {
  Begin b;
  auto t = tokens_.find(token);
  if (t == tokens_.end() || t->second.expires < std::chrono::steady_clock::now()) {
    b.status = 401;
    return b;
  }
  b.ns = t->second.ns;
  b.claim = t->second.claim;
  const Object* pvc = c_.store().find(c_.resource(kPersistentVolumeClaims), b.ns, b.claim);
  if (!pvc) {
    b.status = 503;
    b.message = "rejecting Upload Request for PVC " + b.claim + " that doesn't exist";
    return b;
  }
  auto st = states_.find(key(b.ns, b.claim));
  if (st == states_.end()) {
    b.status = 503;
    b.message = "PVC " + b.claim + " is not an upload target";
    return b;
  }
  switch (st->second) {
    case UploadState::kNotReady:
      b.status = 503;
      b.message = "timed out waiting for the condition (the upload pod of PVC " + b.claim + " is not ready)";
      return b;
    case UploadState::kUploading:
      b.status = 503;  // upstream's upload server: a concurrent upload request
      return b;
    case UploadState::kDone:
      b.status = 409;  // upstream's upload server: an upload request after it is done
      return b;
    case UploadState::kReady:
      break;
  }
  b.size = parse_quantity(std::string(kube::str_at(*pvc, {"status", "capacity", "storage"})));
  if (b.size <= 0) b.size = parse_quantity(std::string(kube::str_at(*pvc, {"spec", "resources", "requests", "storage"})));
  auto file = volumes_.file(b.ns, b.claim, b.size);
  if (!file) {
    b.status = 500;
    b.message = "Saving stream failed: " + file.error().message;
    return b;
  }
  b.file = *file;
  st->second = UploadState::kUploading;
  b.status = 200;
  return b;
}

void CdiUpload::finish(const std::string& ns, const std::string& claim, bool good, uint64_t bytes, const std::string& why) {
  auto st = states_.find(key(ns, claim));
  if (st == states_.end()) return;  // deleted meanwhile
  volumes_.written(ns, claim);
  const Object* pvc = c_.store().find(c_.resource(kPersistentVolumeClaims), ns, claim);
  if (!good) {
    st->second = UploadState::kReady;
    if (pvc) c_.record_event(*pvc, "Warning", "UploadFailed", "Saving stream failed after " + std::to_string(bytes) + " bytes: " + why);
    return;
  }
  st->second = UploadState::kDone;
  (void)c_.store().mutate(c_.resource(kPersistentVolumeClaims), ns, claim, [&](Object& o) {
    auto& ann = ensure_object(o["metadata"].as_object()["annotations"]);
    ann[kAnnPodReady] = "false";
    ann[kAnnPodPhase] = "Succeeded";
  });
  set_dv_status(ns, claim, "Succeeded", "100.0%");
  if (pvc) c_.record_event(*pvc, "Normal", "UploadSucceeded", "Upload Successful (" + std::to_string(bytes) + " bytes)");
}

ServerResponse CdiUpload::handle(const StreamRequest& req, BodyReader& body) {
  if (req.path == "/healthz") return plain(200, "OK");
  static const std::regex kPaths("/v1(alpha1|beta1)/upload(-async)?");
  if (!std::regex_match(req.path, kPaths)) return plain(404, "404 page not found\n");
  bool async = req.path.ends_with("-async");
  if (async && req.method == "HEAD") return plain(200);
  std::string auth = req.header("Authorization");
  if (auth.empty()) return plain(400);
  static const std::regex kBearer("^[Bb][Ee][Aa][Rr][Ee][Rr]\\s+([A-Za-z0-9\\-._~+/]+)$");
  std::smatch m;
  if (!std::regex_match(auth, m, kBearer)) return plain(400);
  std::string token = m[1].str();
  Begin b;
  bool ran = false;
  c_.loop().run_sync([&] {
    b = begin(token);
    ran = true;
  });
  if (!ran) return plain(503, "the cluster is stopping");
  if (b.status != 200) return plain(b.status, b.message);
  if (req.method != "POST") {
    c_.loop().run_sync([&] { finish(b.ns, b.claim, false, 0, "not a POST"); });
    return plain(404);
  }
  ++started_;
  {
    std::unique_lock lk(hold_mu_);
    hold_cv_.wait(lk, [&] { return !held_ || stopping_; });
  }
  int breaking = break_count_.load();
  bool break_this = false;
  while (breaking > 0 && !(break_this = break_count_.compare_exchange_weak(breaking, breaking - 1))) {
  }
  uint64_t break_at = break_this ? break_after_.load() : UINT64_MAX;

  int fd = ::open(b.file.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    std::string why = std::string("cannot open the claim's file: ") + std::strerror(errno);
    c_.loop().run_sync([&] { finish(b.ns, b.claim, false, 0, why); });
    return plain(500, "Saving stream failed: " + why);
  }
  // Holes first: a failed earlier attempt may have left bytes.
  int punched = ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, b.size);
  (void)punched;  // a file system without hole punching: a fresh claim is zeros anyway
  ImageWriter out(fd, b.size);
  std::vector<char> buf(1 << 20);
  std::vector<unsigned char> plainbuf(1 << 20);
  z_stream z{};
  bool gzip = false, first = true, zinit = false, zended = false;
  uint64_t received = 0;
  Status st = ok();
  int status = 200;
  while (st) {
    auto n = body.read(buf.data(), buf.size());
    if (!n) {
      st = n.error();
      break;
    }
    if (*n == 0) break;
    received += *n;
    if (received >= break_at) {
      ::close(fd);
      c_.loop().run_sync([&] { finish(b.ns, b.claim, false, received, "the upload pod restarted (injected fault)"); });
      return plain(0);  // the connection drops
    }
    if (first) {
      first = false;
      gzip = *n >= 2 && static_cast<unsigned char>(buf[0]) == 0x1f && static_cast<unsigned char>(buf[1]) == 0x8b;
      if (gzip) {
        if (inflateInit2(&z, 15 + 32) != Z_OK) st = Error(Errc::kInternal, "zlib");
        zinit = true;
      }
    }
    if (!st) break;
    if (!gzip) {
      auto w = out.write(reinterpret_cast<const unsigned char*>(buf.data()), *n);
      if (!w) {
        st = w.error();
        status = w.error().code == Errc::kInvalidArgument ? 400 : 500;
      }
      continue;
    }
    z.next_in = reinterpret_cast<Bytef*>(buf.data());
    z.avail_in = static_cast<uInt>(*n);
    while (st && z.avail_in > 0) {
      z.next_out = plainbuf.data();
      z.avail_out = static_cast<uInt>(plainbuf.size());
      int zr = inflate(&z, Z_NO_FLUSH);
      if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
        st = Error(Errc::kInvalidArgument, std::string("gzip: ") + (z.msg ? z.msg : "corrupt data"));
        status = 400;
        break;
      }
      size_t produced = plainbuf.size() - z.avail_out;
      if (produced > 0) {
        auto w = out.write(plainbuf.data(), produced);
        if (!w) {
          st = w.error();
          status = w.error().code == Errc::kInvalidArgument ? 400 : 500;
        }
      }
      zended = zr == Z_STREAM_END || (zended && produced == 0 && z.avail_in == 0);
      if (zr == Z_STREAM_END) inflateReset(&z);  // another gzip member may follow
      if (zr == Z_BUF_ERROR && produced == 0) break;
    }
  }
  if (zinit) inflateEnd(&z);
  if (st && gzip && !zended) {
    st = Error(Errc::kInvalidArgument, "gzip: the stream ends before its end marker");
    status = 400;
  }
  if (st && req.has_length && received != req.content_length) {
    st = Error(Errc::kTransport, "unexpected EOF after " + std::to_string(received) + " of " + std::to_string(req.content_length) + " bytes");
  }
  if (st && ::fsync(fd) != 0) st = Error(Errc::kIo, std::string("fsync: ") + std::strerror(errno));
  ::close(fd);
  if (!st && status == 200) status = 500;
  uint64_t written = out.written();
  std::string why = st ? std::string() : st.error().message;
  c_.loop().run_sync([&] { finish(b.ns, b.claim, bool(st), written, why); });
  if (!st) return plain(status, "Saving stream failed: " + why);
  return plain(200);
}

}  // namespace kvb::testcluster
