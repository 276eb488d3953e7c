#include "testcluster/net/http_server.h"

#include "kube/detail/signal.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/url/parse.hpp>

#include <openssl/x509.h>

#include <atomic>
#include <deque>
#include <strings.h>

namespace kvb::testcluster {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

std::string ServerRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && ::strncasecmp(k.data(), name.data(), name.size()) == 0) return v;
  }
  return {};
}

std::string ServerRequest::query_param(const std::string& key) const {
  auto it = query.find(key);
  return it == query.end() ? std::string() : it->second;
}

std::vector<std::string> ServerRequest::query_params(const std::string& key) const {
  std::vector<std::string> out;
  auto [a, b] = query.equal_range(key);
  for (auto it = a; it != b; ++it) out.push_back(it->second);
  return out;
}

namespace {

using kube::detail::Signal;

enum class Decision { kNone, kFull, kStream, kUpgrade, kTruncated, kDrop };

class ConnResponder;

class StreamImpl : public ResponseStream {
 public:
  explicit StreamImpl(asio::any_io_executor ex) : signal(ex) {}
  void write(std::string data) override {
    if (ended) return;
    chunks.push_back(std::move(data));
    signal.notify();
  }
  void finish() override {
    finishing = true;
    signal.notify();
  }
  void abort() override {
    aborting = true;
    signal.notify();
  }
  bool done() const override { return ended; }
  void on_close(std::function<void()> fn) override {
    if (ended) {
      fn();
      return;
    }
    closers.push_back(std::move(fn));
  }
  void end() {
    if (ended) return;
    ended = true;
    auto fns = std::move(closers);
    for (auto& f : fns) f();
  }
  Signal signal;
  std::deque<std::string> chunks;
  bool finishing = false, aborting = false, ended = false;
  std::vector<std::function<void()>> closers;
};

class WebSocketImpl : public WebSocket {
 public:
  explicit WebSocketImpl(asio::any_io_executor ex) : signal(ex) {}
  void send(std::string m) override {
    if (!is_open) return;
    queued += m.size();
    outbox.push_back(std::move(m));
    signal.notify();
  }
  size_t queued_bytes() const override { return queued; }
  void on_drained(std::function<void()> fn) override { drained = std::move(fn); }
  // The writer took a message off the outbox (written or not).
  void took(size_t n) {
    queued -= n;
    if (queued == 0 && drained) {
      auto fn = std::move(drained);
      drained = nullptr;
      fn();
    }
  }
  void close() override {
    closing = true;
    signal.notify();
  }
  void abort() override {
    aborting = true;
    signal.notify();
  }
  bool open() const override { return is_open; }
  Signal signal;
  std::deque<std::string> outbox;
  size_t queued = 0;
  std::function<void()> drained;
  bool closing = false, aborting = false, is_open = true;
};

class ConnResponder : public Responder {
 public:
  explicit ConnResponder(asio::any_io_executor ex) : ex_(ex), signal(ex) {}
  void respond(ServerResponse r) override { decide(Decision::kFull, std::move(r)); }
  std::shared_ptr<ResponseStream> stream(int status, HeaderList headers) override {
    stream_ = std::make_shared<StreamImpl>(ex_);
    ServerResponse r;
    r.status = status;
    r.headers = std::move(headers);
    decide(Decision::kStream, std::move(r));
    return stream_;
  }
  void upgrade(std::string protocol, WebSocketHandlers handlers) override {
    protocol_ = std::move(protocol);
    ws_handlers_ = std::move(handlers);
    decide(Decision::kUpgrade, {});
  }
  void respond_truncated(ServerResponse r, size_t bytes) override {
    truncate_at_ = bytes;
    decide(Decision::kTruncated, std::move(r));
  }
  void drop() override { decide(Decision::kDrop, {}); }

  void decide(Decision d, ServerResponse r) {
    if (decision != Decision::kNone) return;  // only the first answer counts
    decision = d;
    response = std::move(r);
    signal.notify();
  }

  asio::any_io_executor ex_;
  Signal signal;
  Decision decision = Decision::kNone;
  ServerResponse response;
  std::shared_ptr<StreamImpl> stream_;
  std::string protocol_;
  WebSocketHandlers ws_handlers_;
  size_t truncate_at_ = 0;
};

http::response<http::string_body> to_beast(const ServerResponse& r, unsigned version, bool keep_alive) {
  http::response<http::string_body> res{static_cast<http::status>(r.status), version};
  bool has_type = false;
  for (const auto& [k, v] : r.headers) {
    res.insert(k, v);  // a header may repeat (one Warning per unknown field)
    if (beast::iequals(k, "Content-Type")) has_type = true;
  }
  if (!has_type) res.set(http::field::content_type, "application/json");
  res.body() = r.body;
  res.keep_alive(keep_alive);
  res.prepare_payload();
  return res;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes %XX escapes; in query components '+' also means a space.
std::string percent_decode(std::string_view s, bool query_component) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hex_digit(s[i + 1]), lo = hex_digit(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += (query_component && s[i] == '+') ? ' ' : s[i];
  }
  return out;
}

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  EventLoop& loop;
  asio::io_context& io;
  ServerOptions options;
  std::unique_ptr<ssl::context> tls;
  tcp::acceptor acceptor;
  uint16_t port = 0;
  std::atomic<uint64_t> accepted{0};
  uint64_t next_id = 1;
  std::map<uint64_t, std::function<void()>> closers;
  bool stopped = false;

  Impl(EventLoop& l, ServerOptions o)
      : loop(l), io(*static_cast<asio::io_context*>(l.native())), options(std::move(o)), acceptor(io) {}

  asio::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    for (;;) {
      auto [ec, sock] = co_await acceptor.async_accept(use_tuple);
      if (ec) {
        if (stopped || ec == asio::error::operation_aborted) co_return;
        continue;
      }
      ++accepted;
      sock.set_option(tcp::no_delay(true));
      uint64_t id = next_id++;
      if (options.tls) {
        asio::co_spawn(io, serve_tls(std::move(sock), id), asio::detached);
      } else {
        asio::co_spawn(io, session(beast::tcp_stream(std::move(sock)), id), asio::detached);
      }
    }
  }

  asio::awaitable<void> serve_tls(tcp::socket sock, uint64_t id) {
    auto self = shared_from_this();
    beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(sock)), *tls);
    closers[id] = [&stream] {
      boost::system::error_code ec;
      beast::get_lowest_layer(stream).socket().close(ec);
    };
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(10));
    auto [ec] = co_await stream.async_handshake(ssl::stream_base::server, use_tuple);
    closers.erase(id);
    if (ec) co_return;
    beast::get_lowest_layer(stream).expires_never();
    std::string cn;
    if (X509* peer = SSL_get1_peer_certificate(stream.native_handle())) {
      if (SSL_get_verify_result(stream.native_handle()) == X509_V_OK) {
        char buf[256] = {0};
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, buf, sizeof buf);
        cn = buf;
      }
      X509_free(peer);
    }
    co_await session(std::move(stream), id, cn);
  }

  template <class Stream>
  asio::awaitable<void> session(Stream stream, uint64_t id, std::string client_cn = {}) {
    auto self = shared_from_this();
    closers[id] = [&stream] {
      boost::system::error_code ec;
      beast::get_lowest_layer(stream).socket().close(ec);
    };
    struct Unregister {
      Impl* impl;
      uint64_t id;
      ~Unregister() { impl->closers.erase(id); }
    } unregister{this, id};

    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(64 << 20);
      auto [rec, rn] = co_await http::async_read(stream, buffer, parser, use_tuple);
      if (rec) co_return;
      http::request<http::string_body> msg = parser.release();
      ServerRequest req;
      req.method = std::string(msg.method_string());
      req.target = std::string(msg.target());
      req.connection_id = id;
      req.client_common_name = client_cn;
      for (const auto& f : msg) req.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
      req.body = msg.body();
      auto qpos = req.target.find('?');
      req.path = percent_decode(std::string_view(req.target).substr(0, qpos), false);
      if (qpos != std::string::npos) {
        std::string_view q = std::string_view(req.target).substr(qpos + 1);
        while (!q.empty()) {
          size_t amp = q.find('&');
          std::string_view kv = q.substr(0, amp);
          size_t eq = kv.find('=');
          std::string k = percent_decode(kv.substr(0, eq), true);
          std::string v = eq == std::string_view::npos ? std::string() : percent_decode(kv.substr(eq + 1), true);
          if (!k.empty()) req.query.emplace(std::move(k), std::move(v));
          if (amp == std::string_view::npos) break;
          q.remove_prefix(amp + 1);
        }
      }
      req.websocket = websocket::is_upgrade(msg);
      if (req.websocket) {
        std::string protos(msg[http::field::sec_websocket_protocol]);
        size_t start = 0;
        while (start < protos.size()) {
          size_t comma = protos.find(',', start);
          std::string p = protos.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
          while (!p.empty() && p.front() == ' ') p.erase(0, 1);
          while (!p.empty() && p.back() == ' ') p.pop_back();
          if (!p.empty()) req.websocket_protocols.push_back(p);
          if (comma == std::string::npos) break;
          start = comma + 1;
        }
      }
      auto responder = std::make_shared<ConnResponder>(io.get_executor());
      options.handler(std::move(req), responder);
      co_await responder->signal.wait();
      bool keep_alive = msg.keep_alive();
      switch (responder->decision) {
        case Decision::kNone:
        case Decision::kDrop:
          co_return;
        case Decision::kFull: {
          auto res = to_beast(responder->response, msg.version(), keep_alive);
          auto [wec, wn] = co_await http::async_write(stream, res, use_tuple);
          if (wec || !keep_alive) co_return;
          break;
        }
        case Decision::kTruncated: {
          auto res = to_beast(responder->response, msg.version(), false);
          http::response_serializer<http::string_body> sr(res);
          co_await http::async_write_header(stream, sr, use_tuple);
          std::string part = responder->response.body.substr(0, responder->truncate_at_);
          co_await asio::async_write(stream, asio::buffer(part), use_tuple);
          co_return;
        }
        case Decision::kStream: {
          bool reusable = co_await run_stream(stream, msg.version(), *responder);
          if (!reusable) co_return;
          break;
        }
        case Decision::kUpgrade:
          co_await run_websocket(std::move(stream), std::move(msg), *responder, id);
          co_return;
      }
    }
  }

  template <class Stream>
  asio::awaitable<bool> run_stream(Stream& stream, unsigned version, ConnResponder& r) {
    auto st = r.stream_;
    http::response<http::empty_body> res{static_cast<http::status>(r.response.status), version};
    bool has_type = false;
    for (const auto& [k, v] : r.response.headers) {
      res.insert(k, v);
      if (beast::iequals(k, "Content-Type")) has_type = true;
    }
    if (!has_type) res.set(http::field::content_type, "application/json");
    res.chunked(true);
    res.keep_alive(true);
    http::response_serializer<http::empty_body> sr(res);
    auto [hec, hn] = co_await http::async_write_header(stream, sr, use_tuple);
    if (hec) {
      st->end();
      co_return false;
    }
    for (;;) {
      while (!st->chunks.empty()) {
        std::string chunk = std::move(st->chunks.front());
        st->chunks.pop_front();
        auto [cec, cn] = co_await asio::async_write(stream, http::make_chunk(asio::buffer(chunk)), use_tuple);
        if (cec) {
          st->end();
          co_return false;
        }
      }
      if (st->aborting) {
        st->end();
        co_return false;
      }
      if (st->finishing) {
        auto [fec, fn] = co_await asio::async_write(stream, http::make_chunk_last(), use_tuple);
        st->end();
        co_return !fec;
      }
      co_await st->signal.wait();
    }
  }

  template <class Stream>
  asio::awaitable<void> run_websocket(Stream stream, http::request<http::string_body> msg, ConnResponder& r,
                                      uint64_t id) {
    websocket::stream<Stream> ws(std::move(stream));
    closers[id] = [&ws] {  // the session's stream was moved into ws
      boost::system::error_code ec;
      beast::get_lowest_layer(ws).socket().close(ec);
    };
    std::string proto = r.protocol_;
    ws.set_option(websocket::stream_base::decorator([proto](websocket::response_type& res) {
      if (!proto.empty()) res.set(http::field::sec_websocket_protocol, proto);
    }));
    ws.binary(true);
    auto [aec] = co_await ws.async_accept(msg, use_tuple);
    WebSocketHandlers handlers = std::move(r.ws_handlers_);
    if (aec) {
      if (handlers.on_close) handlers.on_close();
      co_return;
    }
    auto handle = std::make_shared<WebSocketImpl>(io.get_executor());
    bool reader_done = false;
    Signal reader_finished(io.get_executor());
    // Reader: messages to the handler until the peer closes or the socket dies.
    asio::co_spawn(
        io,
        [&ws, &handlers, handle, &reader_done, &reader_finished]() -> asio::awaitable<void> {
          beast::flat_buffer buf;
          for (;;) {
            auto [ec, n] = co_await ws.async_read(buf, use_tuple);
            if (ec) break;
            std::string data = beast::buffers_to_string(buf.data());
            buf.consume(buf.size());
            if (handlers.on_message) handlers.on_message(std::move(data));
          }
          reader_done = true;
          handle->is_open = false;
          handle->signal.notify();
          reader_finished.notify();
        },
        asio::detached);
    if (handlers.on_open) handlers.on_open(handle);
    // Writer: the outbox, then close or abort.
    for (;;) {
      while (!handle->outbox.empty() && !reader_done) {
        std::string m = std::move(handle->outbox.front());
        handle->outbox.pop_front();
        auto [wec, wn] = co_await ws.async_write(asio::buffer(m), use_tuple);
        handle->took(m.size());
        if (wec) break;
      }
      if (handle->aborting || reader_done) break;
      if (handle->closing) {
        co_await ws.async_close(websocket::close_code::normal, use_tuple);
        break;
      }
      co_await handle->signal.wait();
    }
    handle->is_open = false;
    if (!reader_done) {
      boost::system::error_code ec;
      beast::get_lowest_layer(ws).socket().close(ec);
      co_await reader_finished.wait();
    }
    if (handlers.on_close) handlers.on_close();
  }
};

HttpServer::HttpServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { stop(); }

Result<std::unique_ptr<HttpServer>> HttpServer::start(EventLoop& loop, ServerOptions options) {
  auto impl = std::make_shared<Impl>(loop, std::move(options));
  const auto& o = impl->options;
  if (o.tls) {
    impl->tls = std::make_unique<ssl::context>(ssl::context::tls_server);
    boost::system::error_code ec;
    impl->tls->use_certificate_chain(asio::buffer(o.cert_pem), ec);
    if (!ec) impl->tls->use_private_key(asio::buffer(o.key_pem), ssl::context::pem, ec);
    if (ec) return Error(Errc::kTls, "server certificate/key: " + ec.message());
    if (!o.client_ca_pem.empty()) {
      impl->tls->add_certificate_authority(asio::buffer(o.client_ca_pem), ec);
      if (ec) return Error(Errc::kTls, "client CA: " + ec.message());
      impl->tls->set_verify_mode(ssl::verify_peer);
    }
  }
  std::string host = o.listen, port = "0";
  if (auto colon = o.listen.rfind(':'); colon != std::string::npos) {
    host = o.listen.substr(0, colon);
    port = o.listen.substr(colon + 1);
  }
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) return Error(Errc::kInvalidArgument, "listen address \"" + o.listen + "\": " + ec.message());
  tcp::endpoint ep(addr, static_cast<uint16_t>(std::stoi(port)));
  Status result = ok();
  loop.run_sync([&] {
    impl->acceptor.open(ep.protocol(), ec);
    if (!ec) impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) impl->acceptor.bind(ep, ec);
    if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      result = Error(Errc::kIo, "cannot listen on " + o.listen + ": " + ec.message());
      return;
    }
    impl->port = impl->acceptor.local_endpoint().port();
    asio::co_spawn(impl->io, impl->accept_loop(), asio::detached);
  });
  if (!result) return result.error();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

uint16_t HttpServer::port() const { return impl_->port; }

std::string HttpServer::url() const {
  return std::string(impl_->options.tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(impl_->port);
}

uint64_t HttpServer::connections_accepted() const { return impl_->accepted.load(); }

void HttpServer::stop() {
  if (!impl_ || stop_requested_.exchange(true)) return;
  auto impl = impl_;
  impl->loop.run_sync([impl] {
    if (impl->stopped) return;
    impl->stopped = true;
    boost::system::error_code ec;
    impl->acceptor.close(ec);
    auto closers = impl->closers;
    for (auto& [id, close] : closers) close();
  });
}

}  // namespace kvb::testcluster
