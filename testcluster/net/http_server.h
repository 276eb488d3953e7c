// HttpServer: a small HTTPS/1.1 server for the test cluster and in-test servers.
//
// It parses requests and hands each to one Handler on the EventLoop thread
// together with a Responder; the handler answers at once or later, from the
// loop thread, with exactly one of: a full response, a chunked stream (watch),
// a WebSocket upgrade (exec), a deliberately broken answer (fault injection),
// or nothing at all (a hung server). Keep-alive connections are served until
// the client closes them.
//
// Invariants: handlers and every Responder/Stream/WebSocket callback run on the
// loop thread; Responder methods may be called from the loop thread only.
#pragma once

#include "common/error.h"
#include "testcluster/net/event_loop.h"

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvb::testcluster {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct ServerRequest {
  std::string method;
  std::string target;   // raw path?query
  std::string path;     // percent-decoded path
  std::multimap<std::string, std::string> query;  // decoded
  HeaderList headers;
  std::string body;
  std::string client_common_name;  // CN of a verified client certificate
  bool websocket = false;          // an Upgrade: websocket request
  std::vector<std::string> websocket_protocols;
  uint64_t connection_id = 0;

  std::string header(std::string_view name) const;
  std::string query_param(const std::string& key) const;  // first value or ""
  std::vector<std::string> query_params(const std::string& key) const;
};

struct ServerResponse {
  int status = 200;
  HeaderList headers;
  std::string body;
};

// A chunked response that stays open (watch). write() queues a chunk.
class ResponseStream {
 public:
  virtual ~ResponseStream() = default;
  virtual void write(std::string data) = 0;
  virtual void finish() = 0;   // terminating chunk; connection stays usable
  virtual void abort() = 0;    // drop the connection mid-stream
  virtual bool done() const = 0;
  // Called once when the stream ends for any reason (client gone, finish, abort).
  virtual void on_close(std::function<void()> fn) = 0;
};

class WebSocket {
 public:
  virtual ~WebSocket() = default;
  virtual void send(std::string binary_message) = 0;
  virtual void close() = 0;   // normal close handshake
  virtual void abort() = 0;   // drop TCP without a close frame
  virtual bool open() const = 0;
  // Back-pressure for streams (port-forward): bytes queued by send() and not
  // yet written, and a one-shot callback for when the queue is empty again.
  virtual size_t queued_bytes() const = 0;
  virtual void on_drained(std::function<void()> fn) = 0;
};

struct WebSocketHandlers {
  std::function<void(std::shared_ptr<WebSocket>)> on_open;
  std::function<void(std::string)> on_message;
  std::function<void()> on_close;  // peer closed or connection lost
};

class Responder {
 public:
  virtual ~Responder() = default;
  virtual void respond(ServerResponse r) = 0;
  virtual std::shared_ptr<ResponseStream> stream(int status, HeaderList headers) = 0;
  virtual void upgrade(std::string protocol, WebSocketHandlers handlers) = 0;
  // Sends the status line, headers and the first `bytes` of the body, then closes.
  virtual void respond_truncated(ServerResponse r, size_t bytes) = 0;
  virtual void drop() = 0;  // close without answering
};

using Handler = std::function<void(ServerRequest&&, std::shared_ptr<Responder>)>;

struct ServerOptions {
  std::string listen = "127.0.0.1:0";
  bool tls = true;
  std::string cert_pem;
  std::string key_pem;
  std::string client_ca_pem;  // when set, client certificates are requested and verified
  Handler handler;
};

class HttpServer {
 public:
  // Starts listening; the handler runs on `loop`.
  static Result<std::unique_ptr<HttpServer>> start(EventLoop& loop, ServerOptions options);
  ~HttpServer();

  uint16_t port() const;
  std::string url() const;  // https://127.0.0.1:PORT
  void stop();              // closes the listener and all connections (blocks until done)
  uint64_t connections_accepted() const;

 private:
  struct Impl;
  explicit HttpServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
  std::atomic<bool> stop_requested_{false};
};

}  // namespace kvb::testcluster
