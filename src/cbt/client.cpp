#include "cbt/client.h"

#include "snapshot_metadata.grpc.pb.h"

#include <grpc/support/log.h>
#include <grpcpp/grpcpp.h>

#include <mutex>
#include <stop_token>

namespace kvb::cbt {
namespace pb = ::snapshotmetadata;

namespace {

constexpr int kResumes = 3;

Error from_status(const grpc::Status& s, const std::string& what) {
  Errc code = Errc::kUnknown;
  switch (s.error_code()) {
    case grpc::StatusCode::UNAUTHENTICATED: code = Errc::kUnauthorized; break;
    case grpc::StatusCode::PERMISSION_DENIED: code = Errc::kForbidden; break;
    case grpc::StatusCode::NOT_FOUND: code = Errc::kNotFound; break;
    case grpc::StatusCode::INVALID_ARGUMENT: code = Errc::kInvalidArgument; break;
    case grpc::StatusCode::DEADLINE_EXCEEDED: code = Errc::kTimeout; break;
    case grpc::StatusCode::UNAVAILABLE: code = Errc::kTransport; break;
    case grpc::StatusCode::CANCELLED: code = Errc::kCancelled; break;
    default: code = Errc::kInternal; break;
  }
  std::string msg = s.error_message();
  if (msg.size() > 512) msg = msg.substr(0, 512) + "...";
  return Error(code, what + ": " + std::to_string(static_cast<int>(s.error_code())) + " " + msg);
}

std::string type_name(pb::BlockMetadataType t) {
  switch (t) {
    case pb::FIXED_LENGTH: return "FIXED_LENGTH";
    case pb::VARIABLE_LENGTH: return "VARIABLE_LENGTH";
    default: return "UNKNOWN";
  }
}

std::shared_ptr<grpc::Channel> channel(const Endpoint& ep) {
  // gRPC's own log lines (a failed handshake) would reach the user's terminal
  // unformatted; what matters comes back in the call's status instead.
  static std::once_flag quiet;
  std::call_once(quiet, [] { gpr_set_log_function([](gpr_log_func_args*) {}); });
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ep.ca_pem;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  return grpc::CreateCustomChannel(ep.address, grpc::SslCredentials(ssl), args);
}

// Appends one message's ranges after checking them against what came before.
template <typename Response>
Status take(const Response& m, Ranges& out, uint64_t& next, const std::string& what) {
  if (m.volume_capacity_bytes() <= 0) return Error(Errc::kParse, what + ": volume_capacity_bytes " + std::to_string(m.volume_capacity_bytes()));
  const uint64_t cap = static_cast<uint64_t>(m.volume_capacity_bytes());
  if (out.capacity != 0 && cap != out.capacity) return Error(Errc::kParse, what + ": the volume's capacity changed within the stream");
  out.capacity = cap;
  out.block_type = type_name(m.block_metadata_type());
  ++out.messages;
  for (const auto& b : m.block_metadata()) {
    if (b.byte_offset() < 0 || b.size_bytes() <= 0) {
      return Error(Errc::kParse, what + ": a range [" + std::to_string(b.byte_offset()) + ", +" + std::to_string(b.size_bytes()) + ")");
    }
    const uint64_t off = static_cast<uint64_t>(b.byte_offset()), len = static_cast<uint64_t>(b.size_bytes());
    if (off < next || off + len > cap || off + len < off) {
      return Error(Errc::kParse, what + ": range [" + std::to_string(off) + ", +" + std::to_string(len) +
                                     ") is out of order, overlapping or beyond the capacity " + std::to_string(cap));
    }
    if (!out.ranges.empty() && out.ranges.back().offset + out.ranges.back().length == off) {
      out.ranges.back().length += len;  // adjacent fixed-length blocks: one range
    } else {
      out.ranges.push_back(Range{off, len});
    }
    next = off + len;
  }
  return ok();
}

// Runs a server-streaming call, resuming from the last range after a broken stream.
template <typename Request, typename Response, typename Start>
Result<Ranges> stream(const Call& call, Request req, const std::string& what, Start start) {
  auto stub = pb::SnapshotMetadata::NewStub(channel(call.endpoint));
  const auto deadline = std::chrono::system_clock::now() + call.timeout;
  req.set_security_token(call.token.reveal());
  req.set_namespace_(call.ns);
  Ranges out;
  uint64_t next = 0;
  for (int attempt = 0;; ++attempt) {
    if (call.stop.stop_requested()) return Error(Errc::kCancelled, what + ": interrupted");
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline);
    std::stop_callback cancel(call.stop, [&ctx] { ctx.TryCancel(); });
    req.set_starting_offset(static_cast<int64_t>(next));
    auto reader = start(*stub, ctx, req);
    Response m;
    Status taken = ok();
    while (taken && reader->Read(&m)) taken = take(m, out, next, what);
    if (!taken) {
      ctx.TryCancel();
      (void)reader->Finish();
      return taken.error();
    }
    grpc::Status s = reader->Finish();
    if (s.ok()) return out;
    if (call.stop.stop_requested()) return Error(Errc::kCancelled, what + ": interrupted");
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE || attempt >= kResumes) return from_status(s, what);
    ++out.resumed;
  }
}

}  // namespace

Result<Ranges> get_metadata_delta(const Call& call, const std::string& base_snapshot_id, const std::string& target_snapshot) {
  pb::GetMetadataDeltaRequest req;
  req.set_base_snapshot_id(base_snapshot_id);
  req.set_target_snapshot_name(target_snapshot);
  const std::string what = "GetMetadataDelta(" + call.ns + "/" + target_snapshot + " since " + base_snapshot_id + ") at " + call.endpoint.address;
  return stream<pb::GetMetadataDeltaRequest, pb::GetMetadataDeltaResponse>(
      call, std::move(req), what,
      [](pb::SnapshotMetadata::Stub& stub, grpc::ClientContext& ctx, const pb::GetMetadataDeltaRequest& r) { return stub.GetMetadataDelta(&ctx, r); });
}

Result<Ranges> get_metadata_allocated(const Call& call, const std::string& snapshot) {
  pb::GetMetadataAllocatedRequest req;
  req.set_snapshot_name(snapshot);
  const std::string what = "GetMetadataAllocated(" + call.ns + "/" + snapshot + ") at " + call.endpoint.address;
  return stream<pb::GetMetadataAllocatedRequest, pb::GetMetadataAllocatedResponse>(
      call, std::move(req), what,
      [](pb::SnapshotMetadata::Stub& stub, grpc::ClientContext& ctx, const pb::GetMetadataAllocatedRequest& r) {
        return stub.GetMetadataAllocated(&ctx, r);
      });
}

}  // namespace kvb::cbt
