#include "testcluster/snapshot_metadata_server.h"

#include "kube/object.h"
#include "kube/resource.h"
#include "snapshot_metadata.grpc.pb.h"
#include "testcluster/cluster.h"
#include "testcluster/csi.h"
#include "testcluster/net/certs.h"
#include "testcluster/sa_tokens.h"
#include "testcluster/storage/volume_store.h"

#include <grpcpp/grpcpp.h>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <vector>

namespace kvb::testcluster {
namespace pb = ::snapshotmetadata;

namespace {

constexpr int kDefaultMaxResults = 256;

struct Snap {
  std::string handle;
  std::filesystem::path file;
};

class Fd {
 public:
  explicit Fd(const std::filesystem::path& p) : fd_(::open(p.c_str(), O_RDONLY | O_CLOEXEC)) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// The data extents of a file (SEEK_DATA/SEEK_HOLE), in order.
std::vector<std::pair<uint64_t, uint64_t>> data_extents(int fd, uint64_t size) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (uint64_t pos = 0; pos < size;) {
    off_t d = ::lseek(fd, static_cast<off_t>(pos), SEEK_DATA);
    if (d < 0) break;
    off_t h = ::lseek(fd, d, SEEK_HOLE);
    uint64_t end = h < 0 ? size : std::min<uint64_t>(static_cast<uint64_t>(h), size);
    out.emplace_back(static_cast<uint64_t>(d), end);
    pos = end;
  }
  return out;
}

bool overlaps(const std::vector<std::pair<uint64_t, uint64_t>>& ext, size_t& k, uint64_t s, uint64_t e) {
  while (k < ext.size() && ext[k].second <= s) ++k;
  return k < ext.size() && ext[k].first < e;
}

Status read_block(int fd, uint64_t off, std::vector<uint8_t>& buf, uint64_t file_size) {
  std::fill(buf.begin(), buf.end(), 0);
  if (off >= file_size) return ok();
  size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), file_size - off)), got = 0;
  while (got < want) {
    ssize_t n = ::pread(fd, buf.data() + got, want - got, static_cast<off_t>(off + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error(Errc::kIo, "cannot read a snapshot file at " + std::to_string(off + got));
    got += static_cast<size_t>(n);
  }
  return ok();
}

uint64_t file_size(int fd) {
  off_t e = ::lseek(fd, 0, SEEK_END);
  return e < 0 ? 0 : static_cast<uint64_t>(e);
}

}  // namespace

struct SnapshotMetadataServer::Impl final : pb::SnapshotMetadata::Service {
  Cluster& c;
  std::string driver, audience, address;
  std::unique_ptr<grpc::Server> server;
  std::atomic<uint64_t> calls{0};
  std::atomic<int> break_after{-1};  // break_next_stream()

  Impl(Cluster& cl, std::string d, std::string a) : c(cl), driver(std::move(d)), audience(std::move(a)) {}

  grpc::Status authenticate(const std::string& token) const {
    if (!c.sa_tokens().authenticate(token, audience)) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "the security token is not a valid token for audience " + audience);
    }
    return grpc::Status::OK;
  }

  // The storage snapshot of VolumeSnapshot ns/name, if it is this driver's and its bytes exist.
  grpc::Status target(const std::string& ns, const std::string& name, Snap& out) {
    grpc::Status st(grpc::StatusCode::NOT_FOUND, "volumesnapshot " + ns + "/" + name + " not found");
    c.loop().run_sync([&] {
      auto vs = c.store().get(c.resource(kube::resources::kVolumeSnapshots), ns, name);
      if (!vs) return;
      std::string content(kube::str_at(*vs, {"status", "boundVolumeSnapshotContentName"}));
      auto vsc = content.empty() ? Result<Object>(Error(Errc::kNotFound, "")) : c.store().get(c.resource(kube::resources::kVolumeSnapshotContents), "", content);
      if (!vsc) {
        st = grpc::Status(grpc::StatusCode::UNAVAILABLE, "volumesnapshot " + ns + "/" + name + " is not bound to a content yet");
        return;
      }
      if (kube::str_at(*vsc, {"spec", "driver"}) != driver) {
        st = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "volumesnapshot " + ns + "/" + name + " is not of driver " + driver);
        return;
      }
      out.handle = std::string(kube::str_at(*vsc, {"status", "snapshotHandle"}));
      if (out.handle.empty() || !c.csi().volume_store().has_snapshot(out.handle)) {
        st = grpc::Status(grpc::StatusCode::UNAVAILABLE, "volumesnapshot " + ns + "/" + name + " is not ready");
        return;
      }
      out.file = c.csi().volume_store().snapshot_path(out.handle);
      st = grpc::Status::OK;
    });
    return st;
  }

  grpc::Status base(const std::string& handle, Snap& out) {
    bool found = false;
    c.loop().run_sync([&] {
      found = !handle.empty() && c.csi().volume_store().has_snapshot(handle);
      if (found) out.file = c.csi().volume_store().snapshot_path(handle);
    });
    out.handle = handle;
    if (!found) return grpc::Status(grpc::StatusCode::NOT_FOUND, "snapshot " + handle + " does not exist");
    return grpc::Status::OK;
  }

  // Streams `blocks` (FIXED_LENGTH, ascending) from starting_offset on.
  template <typename Response>
  grpc::Status send(grpc::ServerWriter<Response>* w, const std::vector<uint64_t>& blocks, uint64_t capacity, int64_t start, int32_t max) {
    const int cut = break_after.exchange(-1);
    const size_t per = cut > 0 ? static_cast<size_t>(cut) : static_cast<size_t>(max > 0 ? max : kDefaultMaxResults);
    Response m;
    auto fresh = [&] {
      m.Clear();
      m.set_block_metadata_type(pb::FIXED_LENGTH);
      m.set_volume_capacity_bytes(static_cast<int64_t>(capacity));
    };
    fresh();
    for (uint64_t b : blocks) {
      if (start > 0 && b + kBlockSize <= static_cast<uint64_t>(start)) continue;
      auto* bm = m.add_block_metadata();
      bm->set_byte_offset(static_cast<int64_t>(b));
      bm->set_size_bytes(static_cast<int64_t>(kBlockSize));
      if (static_cast<size_t>(m.block_metadata_size()) == per) {
        if (!w->Write(m)) return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
        if (cut > 0) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the snapshot metadata sidecar restarted (fault)");
        fresh();
      }
    }
    if (m.block_metadata_size() > 0 || blocks.empty()) {
      if (!w->Write(m)) return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
    }
    return grpc::Status::OK;
  }

  grpc::Status GetMetadataDelta(grpc::ServerContext*, const pb::GetMetadataDeltaRequest* req,
                                grpc::ServerWriter<pb::GetMetadataDeltaResponse>* w) override {
    ++calls;
    if (auto st = authenticate(req->security_token()); !st.ok()) return st;
    Snap t, b;
    if (auto st = target(req->namespace_(), req->target_snapshot_name(), t); !st.ok()) return st;
    if (auto st = base(req->base_snapshot_id(), b); !st.ok()) return st;
    Fd tf(t.file), bf(b.file);
    if (tf.get() < 0 || bf.get() < 0) return grpc::Status(grpc::StatusCode::INTERNAL, "cannot open the snapshots' bytes");
    const uint64_t size = file_size(tf.get()), bsize = file_size(bf.get());
    // Block size must divide the capacity for FIXED_LENGTH; the test cluster's sizes are MiB multiples.
    auto te = data_extents(tf.get(), size), be = data_extents(bf.get(), bsize);
    std::vector<uint64_t> changed;
    std::vector<uint8_t> x(kBlockSize), y(kBlockSize);
    size_t ti = 0, bi = 0;
    for (uint64_t off = 0; off < size; off += kBlockSize) {
      const uint64_t end = std::min(size, off + kBlockSize);
      const bool td = overlaps(te, ti, off, end), bd = overlaps(be, bi, off, end);
      if (!td && !bd) continue;  // a hole in both: zeros in both
      if (!read_block(tf.get(), off, x, size) || !read_block(bf.get(), off, y, bsize)) {
        return grpc::Status(grpc::StatusCode::INTERNAL, "cannot read the snapshots' bytes");
      }
      if (std::memcmp(x.data(), y.data(), kBlockSize) != 0) changed.push_back(off);
    }
    return send(w, changed, size, req->starting_offset(), req->max_results());
  }

  grpc::Status GetMetadataAllocated(grpc::ServerContext*, const pb::GetMetadataAllocatedRequest* req,
                                    grpc::ServerWriter<pb::GetMetadataAllocatedResponse>* w) override {
    ++calls;
    if (auto st = authenticate(req->security_token()); !st.ok()) return st;
    Snap t;
    if (auto st = target(req->namespace_(), req->snapshot_name(), t); !st.ok()) return st;
    Fd tf(t.file);
    if (tf.get() < 0) return grpc::Status(grpc::StatusCode::INTERNAL, "cannot open the snapshot's bytes");
    const uint64_t size = file_size(tf.get());
    std::vector<uint64_t> blocks;
    for (const auto& [s, e] : data_extents(tf.get(), size)) {
      for (uint64_t b = s / kBlockSize * kBlockSize; b < e; b += kBlockSize) {
        if (blocks.empty() || blocks.back() != b) blocks.push_back(b);
      }
    }
    return send(w, blocks, size, req->starting_offset(), req->max_results());
  }
};

Result<std::unique_ptr<SnapshotMetadataServer>> SnapshotMetadataServer::start(Cluster& c, std::string driver, std::string audience) {
  CertSpec spec;
  spec.common_name = "snapshot-metadata." + driver;
  spec.ip_addresses = {"127.0.0.1"};
  KVB_TRY(auto cert, issue_certificate(c.ca(), spec));
  auto impl = std::make_unique<Impl>(c, std::move(driver), std::move(audience));
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back({cert.key_pem, cert.cert_pem});
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(ssl), &port);
  builder.RegisterService(impl.get());
  impl->server = builder.BuildAndStart();
  if (!impl->server || port == 0) return Error(Errc::kIo, "the SnapshotMetadata gRPC server did not start");
  impl->address = "127.0.0.1:" + std::to_string(port);
  return std::unique_ptr<SnapshotMetadataServer>(new SnapshotMetadataServer(std::move(impl)));
}

SnapshotMetadataServer::SnapshotMetadataServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SnapshotMetadataServer::~SnapshotMetadataServer() { stop(); }
std::string SnapshotMetadataServer::address() const { return impl_->address; }
const std::string& SnapshotMetadataServer::driver() const { return impl_->driver; }
const std::string& SnapshotMetadataServer::audience() const { return impl_->audience; }
uint64_t SnapshotMetadataServer::calls() const { return impl_->calls; }
void SnapshotMetadataServer::break_next_stream(int ranges) { impl_->break_after = ranges; }
void SnapshotMetadataServer::stop() {
  if (impl_ && impl_->server) {
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    impl_->server.reset();
  }
}

}  // namespace kvb::testcluster
