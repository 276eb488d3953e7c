#include "testcluster/port_forward_service.h"

#include "kube/api_status.h"
#include "kube/exec_protocol.h"
#include "kube/object.h"
#include "testcluster/export/export_controller.h"
#include "testcluster/net/fd_stream.h"
#include "testcluster/port_forward_spdy.h"

#include <boost/json.hpp>

#include <charconv>

namespace kvb::testcluster {
namespace json = boost::json;

namespace {

// Bytes queued towards the client before the pod side stops being read.
constexpr size_t kQueueBound = size_t{8} << 20;
constexpr uint16_t kExporterPort = 8443;

ServerResponse status_response(int code, const std::string& message) {
  ServerResponse r;
  r.status = code;
  r.headers.emplace_back("Content-Type", "application/json");
  r.body = kube::status_json(code, kube::reason_for_code(code), message);
  return r;
}

// The VirtualMachineExport whose exporter this pod is ("" if none).
std::string export_of_pod(const json::value& pod) {
  if (kube::label_of(pod, "kubevirt.io.virt-export-service").empty()) return {};
  if (const auto* refs = kube::array_at(pod, {"metadata", "ownerReferences"})) {
    for (const auto& ref : *refs) {
      if (kube::str_at(ref, {"kind"}) == "VirtualMachineExport") return std::string(kube::str_at(ref, {"name"}));
    }
  }
  return {};
}

struct Forward {
  uint16_t port = 0;
  std::shared_ptr<FdStream> pod;  // the connection to the pod's port, while it lasts
  bool paused = false;
};

struct PortForwardSession : std::enable_shared_from_this<PortForwardSession> {
  Cluster& c;
  std::string ns, pod, uid, export_name;
  std::vector<Forward> forwards;
  std::shared_ptr<WebSocket> ws;
  size_t live = 0;
  bool ended = false;

  explicit PortForwardSession(Cluster& cl) : c(cl) {}

  uint8_t data_channel(size_t i) const { return static_cast<uint8_t>(2 * i); }

  void open(std::shared_ptr<WebSocket> socket) {
    ws = std::move(socket);
    for (size_t i = 0; i < forwards.size(); ++i) {
      ws->send(kube::encode_port_frame(data_channel(i), forwards[i].port));
      ws->send(kube::encode_port_frame(data_channel(i) + 1, forwards[i].port));
    }
    for (size_t i = 0; i < forwards.size(); ++i) connect(i);
    if (live == 0) ws->close();
  }

  void connect(size_t i) {
    Result<int> fd = dial_pod_port(c, ns, pod, uid, export_name, forwards[i].port);
    if (!fd) {
      ws->send(kube::encode_channel_frame(data_channel(i) + 1, fd.error().message));
      return;
    }
    std::weak_ptr<PortForwardSession> weak = shared_from_this();
    FdStreamHandlers h;
    h.on_data = [weak, i](std::string data) {
      if (auto s = weak.lock()) s->from_pod(i, data);
    };
    h.on_close = [weak, i] {
      if (auto s = weak.lock()) s->pod_closed(i);
    };
    forwards[i].pod = FdStream::attach(c.loop(), *fd, std::move(h));
    if (forwards[i].pod) ++live;
  }

  void from_pod(size_t i, const std::string& data) {
    if (!ws || !ws->open()) return;
    ws->send(kube::encode_channel_frame(data_channel(i), data));
    if (ws->queued_bytes() <= kQueueBound) return;
    forwards[i].paused = true;
    forwards[i].pod->pause(true);
    std::weak_ptr<PortForwardSession> weak = shared_from_this();
    ws->on_drained([weak] {
      auto s = weak.lock();
      if (!s) return;
      for (auto& f : s->forwards) {
        if (f.paused && f.pod) f.pod->pause(false);
        f.paused = false;
      }
    });
  }

  void pod_closed(size_t i) {
    if (ended) return;
    forwards[i].pod.reset();
    if (--live == 0 && ws) ws->close();  // the kubelet closes the stream when every forward ended
  }

  void on_message(std::string_view m) {
    auto frame = kube::decode_exec_frame(m);  // the same channel framing
    if (!frame) return;
    const size_t ch = static_cast<uint8_t>(frame->channel);
    if (ch % 2 != 0 || ch / 2 >= forwards.size()) return;
    if (auto& p = forwards[ch / 2].pod) p->write(std::string(frame->payload));
  }

  void on_close() {
    if (ended) return;
    ended = true;
    auto held = forwards;  // keeps each stream alive through its own close()
    for (auto& f : held) {
      if (f.pod) f.pod->close();
    }
  }
};

}  // namespace

Result<int> dial_pod_port(Cluster& c, const std::string& ns, const std::string& pod, const std::string& uid,
                          const std::string& export_name, uint16_t port) {
  Result<int> fd = Error(Errc::kTransport, "connect: connection refused");
  if (port == kExporterPort && !export_name.empty() && c.exports().server()) fd = c.exports().server()->connect_pod(ns, export_name);
  if (fd) return fd;
  // What the kubelet writes on the error stream (CRI streaming server).
  return Error(Errc::kTransport, "error forwarding port " + std::to_string(port) + " to pod " + uid +
                                     ", uid : failed to connect to localhost:" + std::to_string(port) + " inside namespace of pod " +
                                     ns + "/" + pod + ", IPv4: dial tcp4 127.0.0.1:" + std::to_string(port) + ": " +
                                     fd.error().message);
}

void serve_port_forward(Cluster& c, ServerRequest&& req, std::shared_ptr<Responder> r, const std::string& ns,
                        const std::string& pod) {
  const Object* p = c.store().find(c.resource(kube::resources::kPods), ns, pod);
  if (!p) return r->respond(status_response(404, "pods \"" + pod + "\" not found"));
  json::value pv(*p);
  std::string phase(kube::str_at(pv, {"status", "phase"}));
  if (phase != "Running") {
    return r->respond(status_response(400, "unable to forward ports to pod " + pod + ": pod is not running (phase " + phase + ")"));
  }
  if (!req.websocket) {
    // A bare SPDY upgrade (a POST with Upgrade: SPDY/3.1): what kubectl falls back to
    // when its WebSocket tunnel is refused; the tunnel is served below.
    return r->respond(status_response(400, "Upgrade request required: the test cluster serves port-forward over WebSocket "
                                           "(v4.channel.k8s.io, or SPDY/3.1 tunnelled as SPDY/3.1+portforward.k8s.io), "
                                           "not a bare SPDY upgrade"));
  }
  for (const auto& offered : req.websocket_protocols) {
    if (offered == kSpdyTunnelProtocol) {
      return serve_port_forward_spdy(c, std::move(r), ns, pod, std::string(kube::uid_of(pv)), export_of_pod(pv));
    }
  }
  std::string protocol;
  bool acceptable = req.websocket_protocols.empty();
  for (const auto& offered : req.websocket_protocols) {
    if (protocol.empty() && (offered == kube::kPortForwardProtocolV4 || offered == "channel.k8s.io")) {
      protocol = offered;
      acceptable = true;
    }
  }
  if (!acceptable) {
    return r->respond(status_response(400, "none of the offered WebSocket subprotocols is supported for port-forward "
                                           "(v4.channel.k8s.io, channel.k8s.io)"));
  }
  // ports=8443 or ports=8443,9999, possibly repeated (the kubelet's V4Options).
  std::vector<uint16_t> ports;
  for (const auto& value : req.query_params("ports")) {
    size_t start = 0;
    while (start <= value.size()) {
      size_t comma = value.find(',', start);
      std::string one = value.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      unsigned v = 0;
      auto [end, ec] = std::from_chars(one.data(), one.data() + one.size(), v);
      if (one.empty() || ec != std::errc() || end != one.data() + one.size() || v > 65535) {
        return r->respond(status_response(400, "unable to parse \"" + one + "\" as a port"));
      }
      if (v == 0) return r->respond(status_response(400, "port \"" + one + "\" must be > 0"));
      ports.push_back(static_cast<uint16_t>(v));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  if (ports.empty()) return r->respond(status_response(400, "query parameter \"port\" is required"));
  auto session = std::make_shared<PortForwardSession>(c);
  session->ns = ns;
  session->pod = pod;
  session->uid = std::string(kube::uid_of(pv));
  session->export_name = export_of_pod(pv);
  for (uint16_t port : ports) session->forwards.push_back(Forward{port, nullptr, false});
  WebSocketHandlers h;
  h.on_open = [session](std::shared_ptr<WebSocket> ws) { session->open(std::move(ws)); };
  h.on_message = [session](std::string m) { session->on_message(std::string_view(m)); };
  h.on_close = [session] { session->on_close(); };
  r->upgrade(protocol, h);
}

}  // namespace kvb::testcluster
