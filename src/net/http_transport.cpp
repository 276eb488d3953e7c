#include "net/http_transport.h"

#include "net/tls_bulk_writer.h"

#include <boost/asio/buffer.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/url/parse.hpp>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <csignal>
#include <mutex>
#include <optional>
#include <strings.h>
#include <unistd.h>

namespace kvb::net {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && ::strncasecmp(k.data(), name.data(), k.size()) == 0) return v;
  }
  return {};
}

namespace {

struct Connection {
  asio::io_context io;
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  // Beast reads at most max(512, free capacity) bytes a step: an empty
  // buffer means a scheduler round trip every 512 bytes of a body (a million
  // for 512 MiB, busy-polling epoll). Room for several TLS records a step.
  beast::flat_buffer buffer;
  bool reused = false;
  Connection() { buffer.reserve(256 << 10); }

  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }

  // Runs the io_context until the operation started by `start` completes; the
  // stream's own timer (expires_after) bounds it.
  template <class Start>
  boost::system::error_code run(Clock::duration timeout, Start start) {
    lowest().expires_after(timeout);
    boost::system::error_code result = asio::error::would_block;
    start([&](boost::system::error_code ec, auto&&...) { result = ec; });
    io.restart();
    io.run();
    return result;
  }
};

class BeastTransport : public HttpTransport {
 public:
  BeastTransport(bool tls, std::string host, std::string port, std::string host_header, std::string display,
                 std::shared_ptr<ssl::context> ctx, TransportOptions o)
      : tls_(tls), host_(std::move(host)), port_(std::move(port)), host_header_(std::move(host_header)),
        display_(std::move(display)), ctx_(std::move(ctx)), options_(std::move(o)) {}

  const std::string& host_header() const override { return host_header_; }
  const std::string& display() const override { return display_; }

  Result<HttpResponse> exchange(const HttpRequest& r, bool* sent) override {
    *sent = false;
    for (int round = 0; round < 2; ++round) {
      std::unique_ptr<Connection> c = round == 0 ? take_idle() : nullptr;
      if (!c) {
        auto fresh = connect();
        if (!fresh) return fresh.error();
        c = std::move(*fresh);
      }
      bool round_sent = false;
      bool got_some = false;
      bool reusable = false;
      auto res = exchange_on(*c, r, &round_sent, &got_some, &reusable);
      if (res) {
        *sent = true;
        if (reusable) put_idle(std::move(c));
        return res;
      }
      // A pooled connection the server closed meanwhile: nothing came back, so
      // the request did not take effect; once more on a fresh connection.
      if (c->reused && !got_some && round == 0) continue;
      *sent = *sent || round_sent;
      return res.error();
    }
    return Error(Errc::kTransport, display_ + ": connection lost");
  }

  Result<HttpResponse> exchange_streamed(const HttpRequest& r, uint64_t content_length, const BodyProducer& produce) override {
    auto fresh = connect();
    if (!fresh) return fresh.error();
    Connection& c = **fresh;
    http::request<http::empty_body> req;
    req.method_string(r.method);
    req.target(r.target);
    req.version(11);
    req.set(http::field::host, host_header_);
    for (const auto& [k, v] : r.headers) req.set(k, v);
    req.keep_alive(true);
    req.content_length(content_length);
    http::request_serializer<http::empty_body> sr(req);
    auto ec = c.run(options_.request_timeout, [&](auto handler) {
      if (c.tls) http::async_write_header(*c.tls, sr, handler);
      else http::async_write_header(*c.plain, sr, handler);
    });
    if (ec) return transport_error(r, ec, false);
    uint64_t sent = 0;
    boost::system::error_code write_ec;
    // TLS: the body around Asio's engine, in ~256 KiB sends (net/tls_bulk_writer.h).
    std::optional<TlsBulkWriter> bulk;
    if (c.tls) bulk.emplace(c.tls->native_handle(), c.lowest().socket().native_handle(), options_.request_timeout);
    auto bulk_failed = [&](const Status& st) {
      write_ec = st.error().code == Errc::kTimeout ? boost::system::error_code(beast::error::timeout)
                                                   : boost::system::error_code(asio::error::broken_pipe);
      return Error(st.error().code, r.method + " " + display_ + ": sending the body failed after " + std::to_string(sent) +
                                        " bytes: " + st.error().message);
    };
    Status produced = produce([&](std::string_view piece) -> Status {
      if (write_ec) return Error(Errc::kTransport, r.method + " " + display_ + ": " + write_ec.message());
      if (sent + piece.size() > content_length) {
        return Error(Errc::kInternal, r.method + " " + display_ + ": the body is longer than its Content-Length " +
                                          std::to_string(content_length));
      }
      if (bulk) {
        if (auto st = bulk->write(piece); !st) return bulk_failed(st);
        sent += piece.size();
        return ok();
      }
      write_ec = c.run(options_.request_timeout, [&](auto handler) {
        asio::async_write(*c.plain, asio::buffer(piece.data(), piece.size()), handler);
      });
      if (write_ec) {
        return Error(write_ec == beast::error::timeout ? Errc::kTimeout : Errc::kTransport,
                     r.method + " " + display_ + ": sending the body failed after " + std::to_string(sent) + " bytes: " +
                         write_ec.message());
      }
      sent += piece.size();
      return ok();
    });
    if (bulk && produced && !write_ec) {
      if (auto st = bulk->flush(); !st) produced = bulk_failed(st);
    }
    bulk.reset();  // Asio's engine writes again (nothing is pending in it)
    // The server may have answered early (a refusal) and closed: its answer says more than the broken pipe.
    if (!produced && !write_ec) return produced.error();
    if (produced && sent != content_length) {
      return Error(Errc::kInternal, r.method + " " + display_ + ": the body ended after " + std::to_string(sent) + " of " +
                                        std::to_string(content_length) + " bytes");
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(1 << 20);
    parser.header_limit(1 << 20);
    auto read_timeout = write_ec ? std::chrono::milliseconds(2000) : options_.request_timeout;
    ec = c.run(read_timeout, [&](auto handler) {
      if (c.tls) http::async_read(*c.tls, c.buffer, parser, handler);
      else http::async_read(*c.plain, c.buffer, parser, handler);
    });
    if (ec) return write_ec ? produced.error() : transport_error(r, ec, parser.got_some());
    auto msg = parser.release();
    HttpResponse out;
    out.status = static_cast<int>(msg.result_int());
    for (const auto& f : msg) out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    out.body = std::move(msg.body());
    if (msg.keep_alive() && !write_ec) put_idle(std::move(*fresh));
    return out;
  }

 private:
  Result<std::unique_ptr<Connection>> connect() {
    auto c = std::make_unique<Connection>();
    boost::system::error_code ec;
    tcp::resolver::results_type results;
    if (!options_.dial) {
      tcp::resolver resolver(c->io);
      results = resolver.resolve(host_, port_, ec);
      if (ec) return Error(Errc::kTransport, "cannot resolve " + display_ + ": " + ec.message());
    }
    if (tls_) {
      c->tls.emplace(c->io, *ctx_);
      if (!SSL_set_tlsext_host_name(c->tls->native_handle(), host_.c_str())) {
        return Error(Errc::kTls, "cannot set the TLS server name for " + display_);
      }
      c->tls->set_verify_callback(ssl::host_name_verification(host_));
    } else {
      c->plain.emplace(c->io);
    }
    if (options_.dial) {
      auto fd = options_.dial();
      if (!fd) return Error(fd.error().code, "cannot connect to " + display_ + ": " + fd.error().message);
      // A stream socket of another family (AF_UNIX): Asio reads and writes it alike.
      c->lowest().socket().assign(tcp::v4(), *fd, ec);
      if (ec) {
        ::close(*fd);
        return Error(Errc::kTransport, "cannot connect to " + display_ + ": " + ec.message());
      }
    } else {
      ec = c->run(options_.connect_timeout, [&](auto handler) { c->lowest().async_connect(results, handler); });
      if (ec) {
        Error e(ec == beast::error::timeout ? Errc::kTimeout : Errc::kTransport, "cannot connect to " + display_ + ": " + ec.message());
        return e;
      }
      c->lowest().socket().set_option(tcp::no_delay(true), ec);
    }
    if (tls_) {
      ec = c->run(options_.connect_timeout, [&](auto handler) { c->tls->async_handshake(ssl::stream_base::client, handler); });
      if (ec) {
        long vr = SSL_get_verify_result(c->tls->native_handle());
        std::string why = vr != X509_V_OK ? std::string("certificate not trusted: ") + X509_verify_cert_error_string(vr) : ec.message();
        return Error(ec == beast::error::timeout ? Errc::kTimeout : Errc::kTls,
                     "TLS handshake with " + display_ + " failed: " + why +
                         (vr != X509_V_OK ? " (check the endpoint's host name" + options_.trust_hint + ")" : ""));
      }
    }
    return c;
  }

  Result<HttpResponse> exchange_on(Connection& c, const HttpRequest& r, bool* sent, bool* got_some, bool* reusable) {
    http::request<http::span_body<const char>> req;
    req.method_string(r.method);
    req.target(r.target);
    req.version(11);
    req.set(http::field::host, host_header_);
    for (const auto& [k, v] : r.headers) req.set(k, v);
    req.body() = boost::span<const char>(r.body.data(), r.body.size());
    req.keep_alive(true);
    req.content_length(r.body.size());  // RGW answers 411 without one, even for an empty PUT
    auto timeout = options_.request_timeout + std::chrono::seconds(r.body.size() >> 20);
    auto ec = c.run(timeout, [&](auto handler) {
      if (c.tls) http::async_write(*c.tls, req, handler);
      else http::async_write(*c.plain, req, handler);
    });
    if (ec) return transport_error(r, ec, false);
    *sent = true;
    http::response_parser<http::string_body> parser;
    parser.body_limit(options_.body_limit);
    parser.header_limit(1 << 20);
    if (r.head) parser.skip(true);
    ec = c.run(timeout, [&](auto handler) {
      if (c.tls) http::async_read(*c.tls, c.buffer, parser, handler);
      else http::async_read(*c.plain, c.buffer, parser, handler);
    });
    *got_some = parser.got_some();
    if (ec) return transport_error(r, ec, parser.got_some());
    auto msg = parser.release();
    HttpResponse out;
    out.status = static_cast<int>(msg.result_int());
    for (const auto& f : msg) out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    out.body = std::move(msg.body());
    *reusable = msg.keep_alive();
    return out;
  }

  Error transport_error(const HttpRequest& r, const boost::system::error_code& ec, bool mid_response) const {
    std::string what = r.method + " " + display_ + ": ";
    if (ec == beast::error::timeout) return Error(Errc::kTimeout, what + "no complete response in time");
    if (mid_response) return Error(Errc::kTransport, what + "connection closed mid-response (" + ec.message() + ")");
    return Error(Errc::kTransport, what + ec.message());
  }

  std::unique_ptr<Connection> take_idle() {
    std::lock_guard lk(mu_);
    if (idle_.empty()) return nullptr;
    auto c = std::move(idle_.back());
    idle_.pop_back();
    c->reused = true;
    return c;
  }

  void put_idle(std::unique_ptr<Connection> c) {
    std::lock_guard lk(mu_);
    if (idle_.size() < options_.max_idle) idle_.push_back(std::move(c));
  }

  bool tls_;
  std::string host_, port_, host_header_, display_;
  std::shared_ptr<ssl::context> ctx_;
  TransportOptions options_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_;
};

}  // namespace

Result<std::unique_ptr<HttpTransport>> HttpTransport::create(const std::string& endpoint, TransportOptions options) {
  std::signal(SIGPIPE, SIG_IGN);  // a server that closes while we write is an error, not our death
  auto u = boost::urls::parse_uri(endpoint);
  if (!u) return Error(Errc::kInvalidArgument, "endpoint \"" + endpoint + "\" is not a URL: " + u.error().message());
  std::string scheme(u->scheme());
  if (scheme != "https" && scheme != "http") return Error(Errc::kInvalidArgument, "endpoint \"" + endpoint + "\": the scheme must be https or http");
  bool tls = scheme == "https";
  std::string host(u->encoded_host());
  bool v6 = u->host_type() == boost::urls::host_type::ipv6;
  if (v6) host = host.substr(1, host.size() - 2);
  if (host.empty()) return Error(Errc::kInvalidArgument, "endpoint \"" + endpoint + "\" has no host");
  std::string port = u->has_port() ? std::string(u->port()) : (tls ? "443" : "80");
  std::string shown_host = v6 ? "[" + host + "]" : host;
  std::string host_header = u->has_port() ? shown_host + ":" + port : shown_host;
  std::shared_ptr<ssl::context> ctx;
  if (tls) {
    ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                     ssl::context::no_tlsv1_1);
    ctx->set_verify_mode(ssl::verify_peer);
    boost::system::error_code ec;
    if (!options.ca_pem.empty()) {
      ctx->add_certificate_authority(boost::asio::buffer(options.ca_pem), ec);
      if (ec) return Error(Errc::kConfig, "the CA certificate given for " + endpoint + " cannot be loaded: " + ec.message());
    } else if (!options.ca_bundle_file.empty()) {
      ctx->load_verify_file(options.ca_bundle_file, ec);
      if (ec) return Error(Errc::kConfig, "CA bundle " + options.ca_bundle_file + " cannot be loaded: " + ec.message());
    } else {
      ctx->set_default_verify_paths(ec);
    }
  }
  return std::unique_ptr<HttpTransport>(
      new BeastTransport(tls, host, port, host_header, scheme + "://" + shown_host + ":" + port, ctx, std::move(options)));
}

}  // namespace kvb::net
