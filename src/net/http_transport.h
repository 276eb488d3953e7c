// HttpTransport: blocking HTTP/1.1 exchanges with one endpoint (an S3 server,
// KubeVirt's export server) over
// Boost.Beast (TCP, or TLS with OpenSSL), with a keep-alive connection pool.
//
// Each call blocks its thread; many threads may call at once (each takes its
// own connection from the pool). Every network operation has a deadline: a
// connection runs its own io_context, so a call is "start the async
// operation, run until it completes or its timer fires".
//
// Invariants: a connection is used by one call at a time; one that failed,
// timed out or was told "Connection: close" is never pooled again; TLS
// certificates are verified (the CA bundle given, else the system's) against
// the endpoint's host name; header and body sizes are capped.
//
// This header is free of Beast and Asio (they stay in http_transport.cpp).
#pragma once

#include "common/error.h"

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvb::net {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;
  std::string target;  // encoded path and query
  HeaderList headers;  // Host is added by the transport
  std::string_view body;
  bool head = false;   // a HEAD request: the response has no body whatever its Content-Length
};

struct HttpResponse {
  int status = 0;
  HeaderList headers;
  std::string body;
  std::string header(std::string_view name) const;  // case-insensitive; empty when absent
};

// The body of a streamed request (HttpTransport::exchange_streamed): the
// producer is called once and calls `write` with each piece, in order; a
// piece is taken (sent, or encrypted into the connection's send buffer: its
// memory may be reused) or failed when write returns; what is buffered is
// sent before the response is read.
using BodyWriter = std::function<Status(std::string_view piece)>;
using BodyProducer = std::function<Status(const BodyWriter& write)>;

struct TransportOptions {
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds request_timeout{60'000};  // plus 1 s per MiB of body either way
  std::string ca_bundle_file;  // PEM; empty: the system's trust store
  std::string trust_hint;      // appended to an untrusted-certificate error: where the user sets the CA
  std::string ca_pem;          // PEM certificates to trust instead (a VirtualMachineExport's links.*.cert)
  size_t max_idle = 32;
  uint64_t body_limit = uint64_t{2} << 30;
  // When set, each new connection is this instead of TCP to the endpoint's
  // host: a connected stream socket (a port-forward tunnel), then owned by
  // the transport. TLS, the server name, host name verification and Host
  // stay those of the endpoint.
  std::function<Result<int>()> dial;
};

class HttpTransport {
 public:
  // endpoint: http://host[:port] or https://host[:port]
  static Result<std::unique_ptr<HttpTransport>> create(const std::string& endpoint, TransportOptions options);
  virtual ~HttpTransport() = default;

  // One exchange. Non-2xx statuses are responses, not errors. *sent tells
  // whether the request may have reached the server (retry safety). A pooled
  // connection the server had closed is retried once on a fresh one.
  virtual Result<HttpResponse> exchange(const HttpRequest& req, bool* sent) = 0;
  // One exchange whose body, exactly `content_length` bytes, is produced
  // while it is sent (a disk image, never held whole in memory), on a fresh
  // connection: a producer cannot run twice, so no retry on a stale pooled
  // one. The producer's own error is returned as is; a server that answered
  // before the body was complete (and stopped reading) gives its response.
  // Each piece has request_timeout to be written (over TLS: no progress for
  // that long). Over TLS the body bypasses Asio's engine (tls_bulk_writer.h).
  virtual Result<HttpResponse> exchange_streamed(const HttpRequest& req, uint64_t content_length, const BodyProducer& produce) = 0;
  virtual const std::string& host_header() const = 0;  // host[:port] as sent
  virtual const std::string& display() const = 0;      // "https://host:port" for messages
};

}  // namespace kvb::net
