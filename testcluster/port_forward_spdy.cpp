#include "testcluster/port_forward_spdy.h"

#include "testcluster/net/fd_stream.h"
#include "testcluster/port_forward_service.h"
#include "testcluster/spdy.h"

#include <charconv>
#include <map>
#include <optional>

namespace kvb::testcluster {

namespace {

constexpr size_t kQueueBound = size_t{8} << 20;
constexpr size_t kChunk = size_t{1} << 20;  // data per DATA frame

std::string lower(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

struct SpdySession : std::enable_shared_from_this<SpdySession> {
  struct Pair {
    uint32_t data = 0, error = 0;
    uint16_t port = 0;
    std::shared_ptr<FdStream> pod;
    bool started = false;
    bool paused = false;
  };

  Cluster& c;
  std::string ns, pod, uid, export_name;
  std::shared_ptr<WebSocket> ws;
  spdy::FrameReader reader;
  spdy::HeaderInflater inflater;
  spdy::HeaderDeflater deflater;
  std::map<std::string, Pair> pairs;              // by requestID
  std::map<uint32_t, std::string> request_of;     // stream id -> requestID
  uint32_t last_stream = 0;
  bool ended = false;

  explicit SpdySession(Cluster& cl) : c(cl) {}

  void send(std::string frame) {
    if (ws && ws->open()) ws->send(std::move(frame));
  }

  void fail(const std::string& why) {
    (void)why;
    send(spdy::go_away(last_stream, 1));  // PROTOCOL_ERROR
    if (ws) ws->close();
  }

  void on_message(const std::string& m) {
    reader.feed(m);
    while (!ended) {
      auto f = reader.next();
      if (!f) return fail(f.error().message);
      if (!*f) return;
      handle(**f);
    }
  }

  void handle(const spdy::Frame& f) {
    if (!f.control) return data(f);
    switch (f.type) {
      case spdy::kSynStream: return syn_stream(f);
      case spdy::kPing: return send(spdy::control_frame(spdy::kPing, 0, f.payload));  // echoed as received
      case spdy::kRstStream: return reset(spdy::stream_of(f));
      case spdy::kGoAway: return on_close();
      case spdy::kHeaders: {
        if (f.payload.size() >= 4) (void)inflater.decode(std::string_view(f.payload).substr(4));  // keeps the zlib state in step
        return;
      }
      default: return;  // SETTINGS, WINDOW_UPDATE
    }
  }

  void syn_stream(const spdy::Frame& f) {
    auto s = spdy::parse_syn_stream(f);
    if (!s) return fail(s.error().message);
    auto headers = inflater.decode(s->header_block);
    if (!headers) return fail(headers.error().message);
    last_stream = std::max(last_stream, s->stream_id);
    std::string type, port_text, request;
    for (const auto& [k, v] : *headers) {
      std::string name = lower(k);
      if (name == "streamtype") type = v;
      else if (name == "port") port_text = v;
      else if (name == "requestid") request = v;
    }
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    bool valid = (type == "data" || type == "error") && ec == std::errc() && end == port_text.data() + port_text.size() &&
                 port > 0 && port <= 65535;
    // apimachinery's spdy connection replies to every stream; a rejected one with FIN.
    send(spdy::syn_reply(s->stream_id, deflater.encode({}), !valid));
    if (!valid) return;
    if (request.empty()) request = "stream-" + std::to_string(type == "error" ? s->stream_id : s->stream_id - 2);
    Pair& p = pairs[request];
    (type == "data" ? p.data : p.error) = s->stream_id;
    p.port = static_cast<uint16_t>(port);
    request_of[s->stream_id] = request;
    if (p.data && p.error && !p.started) start(request);
  }

  void start(const std::string& request) {
    Pair& p = pairs[request];
    p.started = true;
    Result<int> fd = dial_pod_port(c, ns, pod, uid, export_name, p.port);
    if (!fd) {
      send(spdy::data_frame(p.error, fd.error().message, false));
      return finish(request);
    }
    std::weak_ptr<SpdySession> weak = shared_from_this();
    FdStreamHandlers h;
    h.on_data = [weak, request](std::string bytes) {
      if (auto s = weak.lock()) s->from_pod(request, bytes);
    };
    h.on_close = [weak, request] {
      if (auto s = weak.lock()) s->finish(request);
    };
    p.pod = FdStream::attach(c.loop(), *fd, std::move(h));
  }

  void from_pod(const std::string& request, const std::string& bytes) {
    auto it = pairs.find(request);
    if (it == pairs.end() || !ws || !ws->open()) return;
    for (size_t at = 0; at < bytes.size(); at += kChunk) {
      send(spdy::data_frame(it->second.data, std::string_view(bytes).substr(at, kChunk), false));
    }
    if (ws->queued_bytes() <= kQueueBound || !it->second.pod) return;
    it->second.paused = true;
    it->second.pod->pause(true);
    std::weak_ptr<SpdySession> weak = shared_from_this();
    ws->on_drained([weak] {
      auto s = weak.lock();
      if (!s) return;
      for (auto& [id, p] : s->pairs) {
        if (p.paused && p.pod) p.pod->pause(false);
        p.paused = false;
      }
    });
  }

  void data(const spdy::Frame& f) {
    auto r = request_of.find(f.stream_id);
    if (r == request_of.end()) {
      send(spdy::rst_stream(f.stream_id, 2));  // INVALID_STREAM
      return;
    }
    const std::string request = r->second;  // finish() erases r
    auto it = pairs.find(request);
    if (it == pairs.end()) return;
    // The client's error stream carries nothing; its data stream the local connection's bytes.
    if (f.stream_id != it->second.data) return;
    if (it->second.pod && !f.payload.empty()) it->second.pod->write(f.payload);
    // The local connection ended (kubectl closes the data stream): the pod's connection ends too
    // (FdStream has no half-close; a TLS peer does not read after its own close anyway).
    if (f.flags & spdy::kFlagFin) finish(request);
  }

  // The pod side ended (or never began): both streams end, as the kubelet's deferred Close()s do.
  void finish(const std::string& request) {
    auto p = take(request);
    if (!p) return;
    if (p->data) send(spdy::data_frame(p->data, {}, true));
    if (p->error) send(spdy::data_frame(p->error, {}, true));
    if (p->pod) p->pod->close();
  }

  // The client reset one of a pair's streams: the pair ends without FINs.
  void reset(uint32_t stream) {
    auto r = request_of.find(stream);
    if (r == request_of.end()) return;
    auto p = take(std::string(r->second));
    if (p && p->pod) p->pod->close();
  }

  // Forgets the pair of `request` and its streams; nullopt when there is none.
  std::optional<Pair> take(const std::string& request) {
    auto it = pairs.find(request);
    if (it == pairs.end()) return std::nullopt;
    Pair p = it->second;
    pairs.erase(it);
    request_of.erase(p.data);
    request_of.erase(p.error);
    return p;
  }

  void on_close() {
    if (ended) return;
    ended = true;
    auto held = pairs;  // keeps each stream alive through its own close()
    pairs.clear();
    for (auto& [id, p] : held) {
      if (p.pod) p.pod->close();
    }
    if (ws && ws->open()) ws->close();
  }
};

}  // namespace

void serve_port_forward_spdy(Cluster& c, std::shared_ptr<Responder> r, const std::string& ns, const std::string& pod,
                             const std::string& uid, const std::string& export_name) {
  auto session = std::make_shared<SpdySession>(c);
  session->ns = ns;
  session->pod = pod;
  session->uid = uid;
  session->export_name = export_name;
  WebSocketHandlers h;
  h.on_open = [session](std::shared_ptr<WebSocket> ws) { session->ws = std::move(ws); };
  h.on_message = [session](std::string m) { session->on_message(m); };
  h.on_close = [session] { session->on_close(); };
  r->upgrade(kSpdyTunnelProtocol, h);
}

}  // namespace kvb::testcluster
