// StreamServer: a small HTTPS/1.1 server whose handlers read the request body
// as a stream, for endpoints that receive disk images (CDI's upload proxy):
// HttpServer (http_server.h) reads whole bodies into memory, which an image
// of gigabytes must never be.
//
// One thread per connection; the handler runs on that thread (not the event
// loop: it may block on the body for minutes) and reaches the cluster's state
// through EventLoop::run_sync. The handler reads as much of the body as it
// wants (BodyReader); a body not read to its end closes the connection after
// the response. "Expect: 100-continue" is answered when the handler first
// reads, so a client such as curl learns of a refusal (401, 503) before it
// sends a byte of the body.
//
// A handler's response with status 0 drops the connection without an answer.
//
// Invariants: stop() closes the listener and every connection and joins
// their threads; a connection idle or stalled for `idle_timeout` is closed.
#pragma once

#include "common/error.h"
#include "testcluster/net/http_server.h"

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace kvb::testcluster {

struct StreamRequest {
  std::string method;
  std::string target;  // raw path?query
  std::string path;    // path without the query
  HeaderList headers;
  bool has_length = false;      // Content-Length given (else chunked or none)
  uint64_t content_length = 0;
  std::string header(std::string_view name) const;
};

class BodyReader {
 public:
  virtual ~BodyReader() = default;
  // Up to n bytes of the body; 0 at its end; an error when the client went
  // away, stalled, or sent a malformed body.
  virtual Result<size_t> read(char* data, size_t n) = 0;
  virtual bool done() const = 0;
};

using StreamHandler = std::function<ServerResponse(const StreamRequest&, BodyReader&)>;

struct StreamServerOptions {
  std::string listen = "127.0.0.1:0";
  std::string cert_pem, key_pem;
  std::chrono::milliseconds idle_timeout{60'000};
  StreamHandler handler;
};

class StreamServer {
 public:
  static Result<std::unique_ptr<StreamServer>> start(StreamServerOptions options);
  ~StreamServer();
  uint16_t port() const;
  void stop();

 private:
  struct Impl;
  explicit StreamServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace kvb::testcluster
