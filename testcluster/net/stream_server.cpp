#include "testcluster/net/stream_server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cerrno>
#include <cstring>
#include <list>
#include <sstream>
#include <mutex>
#include <strings.h>
#include <thread>

namespace kvb::testcluster {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

std::string StreamRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && ::strncasecmp(k.data(), name.data(), k.size()) == 0) return v;
  }
  return {};
}

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now().time_since_epoch()).count();
}

struct Conn {
  int fd = -1;
  std::atomic<int64_t> last_activity{0};
  std::atomic<bool> finished{false};
  std::thread thread;
};

// TLS on a connection's (blocking) socket by OpenSSL itself, reading ahead
// into a 256 KiB buffer: an upload arrives in few large recv()s. (Asio's
// engine feeds OpenSSL through a 17 KiB BIO pair: a recv per 16 KiB record.)
class TlsConn {
 public:
  TlsConn(SSL_CTX* ctx, int fd) : ssl_(SSL_new(ctx)) {
    if (!ssl_) return;
    SSL_set_fd(ssl_, fd);
    SSL_set_read_ahead(ssl_, 1);
    SSL_set_default_read_buffer_len(ssl_, 256 << 10);
  }
  ~TlsConn() {
    if (ssl_) SSL_free(ssl_);
  }
  TlsConn(const TlsConn&) = delete;
  TlsConn& operator=(const TlsConn&) = delete;

  bool accept() { return ssl_ && SSL_accept(ssl_) == 1; }
  // Up to n bytes; 0 when the client closed the connection cleanly.
  Result<size_t> read(char* data, size_t n) {
    size_t got = 0;
    ERR_clear_error();
    errno = 0;
    if (SSL_read_ex(ssl_, data, n, &got) == 1) return got;
    return failed(0, "reading");
  }
  Status write(std::string_view data) {
    while (!data.empty()) {
      size_t put = 0;
      ERR_clear_error();
      errno = 0;
      if (SSL_write_ex(ssl_, data.data(), data.size(), &put) != 1) {
        auto f = failed(0, "writing");
        return f ? Status(Error(Errc::kTransport, "writing: the client closed the connection")) : Status(f.error());
      }
      data.remove_prefix(put);
    }
    return ok();
  }
  void shutdown() { SSL_shutdown(ssl_); }

 private:
  Result<size_t> failed(int ret, const char* what) {
    int saved = errno;
    switch (SSL_get_error(ssl_, ret)) {
      case SSL_ERROR_ZERO_RETURN: return size_t{0};
      case SSL_ERROR_SYSCALL:
        return Error(Errc::kTransport, std::string(what) + ": " + (saved ? std::strerror(saved) : "the client went away"));
      default: {
        char buf[256];
        ERR_error_string_n(ERR_peek_last_error(), buf, sizeof buf);
        return Error(Errc::kTransport, std::string(what) + ": TLS: " + buf);
      }
    }
  }
  SSL* ssl_;
};

// The bytes read from a connection that the parser has not taken yet, and
// the parser's steps over them.
struct Input {
  TlsConn& tls;
  beast::flat_buffer buf;
  // Reads more into buf: an error, or false at a clean end.
  Result<bool> more() {
    auto space = buf.prepare(256 << 10);
    KVB_TRY(auto n, tls.read(static_cast<char*>(space.data()), space.size()));
    buf.commit(n);
    return n > 0;
  }
};

// A body with a Content-Length is read straight into the handler's buffer
// (what the header's read left over first, then TLS reads into place); a
// chunked one goes through Beast's parser, which copies it once more.
class ParserBody : public BodyReader {
 public:
  ParserBody(Input& in, http::request_parser<http::buffer_body>& p, Conn& c, bool expect_continue)
      : in_(in), p_(p), c_(c), expect_continue_(expect_continue) {
    if (auto len = p_.content_length(); len && !p_.chunked()) {
      direct_ = true;
      left_ = *len;
    }
  }

  Result<size_t> read(char* data, size_t n) override {
    if (done()) return size_t{0};
    if (expect_continue_) {
      expect_continue_ = false;
      static constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
      if (auto st = in_.tls.write(std::string_view(kContinue, sizeof(kContinue) - 1)); !st) {
        return Error(Errc::kTransport, "client gone: " + st.error().message);
      }
    }
    if (direct_) {
      size_t got = 0;
      n = static_cast<size_t>(std::min<uint64_t>(n, left_));
      if (in_.buf.size() > 0) {
        got = asio::buffer_copy(asio::buffer(data, n), in_.buf.data());
        in_.buf.consume(got);
      }
      while (got < n) {  // fill the buffer: the handler writes what it gets, and fewer larger writes are cheaper
        auto r = in_.tls.read(data + got, n - got);
        if (!r) return Error(Errc::kTransport, "reading the body: " + r.error().message);
        if (*r == 0) return Error(Errc::kTransport, "reading the body: the client closed the connection after " +
                                                        std::to_string(p_.content_length().value_or(0) - left_ + got) + " bytes");
        got += *r;
        c_.last_activity = now_ms();
      }
      left_ -= got;
      return got;
    }
    for (;;) {
      if (p_.is_done()) return size_t{0};
      p_.get().body().data = data;
      p_.get().body().size = n;
      size_t used = 0;
      boost::system::error_code ec;
      if (in_.buf.size() > 0) {
        used = p_.put(in_.buf.data(), ec);
        in_.buf.consume(used);
        if (ec == http::error::need_buffer) ec = {};
        if (ec && ec != http::error::need_more) return Error(Errc::kTransport, "reading the body: " + ec.message());
        size_t got = n - p_.get().body().size;
        if (got > 0) return got;
        if (!ec && used > 0) continue;  // framing (a chunk's header) parsed: go on
      }
      auto more = in_.more();
      if (!more) return Error(Errc::kTransport, "reading the body: " + more.error().message);
      if (!*more) return Error(Errc::kTransport, "reading the body: the client closed the connection mid-body");
      c_.last_activity = now_ms();
    }
  }
  bool done() const override { return direct_ ? left_ == 0 : p_.is_done(); }

 private:
  Input& in_;
  http::request_parser<http::buffer_body>& p_;
  Conn& c_;
  bool expect_continue_;
  bool direct_ = false;
  uint64_t left_ = 0;  // direct: body bytes not read yet
};

}  // namespace

struct StreamServer::Impl {
  StreamServerOptions options;
  asio::io_context io;
  ssl::context tls{ssl::context::tls_server};
  tcp::acceptor acceptor{io};
  uint16_t port = 0;
  std::atomic<bool> stopping{false};
  std::mutex mu;
  std::condition_variable cv;
  std::list<std::unique_ptr<Conn>> conns;
  std::thread accept_thread, watchdog;

  void accept_loop() {
    while (!stopping) {
      boost::system::error_code ec;
      tcp::socket sock(io);
      acceptor.accept(sock, ec);
      if (ec || stopping) {
        if (stopping) return;
        continue;
      }
      std::lock_guard lk(mu);
      // Join connections that ended.
      for (auto it = conns.begin(); it != conns.end();) {
        if ((*it)->finished) {
          (*it)->thread.join();
          it = conns.erase(it);
        } else {
          ++it;
        }
      }
      auto c = std::make_unique<Conn>();
      c->fd = sock.native_handle();
      c->last_activity = now_ms();
      Conn* cp = c.get();
      c->thread = std::thread([this, cp, s = std::move(sock)]() mutable {
        serve(*cp, std::move(s));
        cp->finished = true;
      });
      conns.push_back(std::move(c));
    }
  }

  void watch_idle() {
    std::unique_lock lk(mu);
    while (!stopping) {
      cv.wait_for(lk, std::chrono::milliseconds(500));
      int64_t limit = now_ms() - options.idle_timeout.count();
      for (auto& c : conns) {
        if (!c->finished && c->last_activity < limit) ::shutdown(c->fd, SHUT_RDWR);
      }
    }
  }

  void serve(Conn& c, tcp::socket sock) {
    boost::system::error_code ec;
    sock.set_option(tcp::no_delay(true), ec);
    TlsConn tls(this->tls.native_handle(), sock.native_handle());
    if (!tls.accept()) return;
    Input in{tls, {}};
    while (!stopping) {
      http::request_parser<http::buffer_body> p;
      p.body_limit(boost::none);
      p.header_limit(64 << 10);
      while (!p.is_header_done()) {
        if (in.buf.size() > 0) {
          size_t used = p.put(in.buf.data(), ec);
          in.buf.consume(used);
          if (ec && ec != http::error::need_more) return;
          ec = {};
          if (p.is_header_done()) break;
        }
        auto more = in.more();
        if (!more || !*more) return;  // gone, or closed between requests
      }
      c.last_activity = now_ms();
      auto& msg = p.get();
      StreamRequest req;
      req.method = std::string(msg.method_string());
      req.target = std::string(msg.target());
      req.path = req.target.substr(0, req.target.find('?'));
      for (const auto& f : msg) req.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
      if (auto len = p.content_length()) {
        req.has_length = true;
        req.content_length = *len;
      }
      bool expect = ::strcasecmp(req.header("Expect").c_str(), "100-continue") == 0;
      bool keep_alive = msg.keep_alive();
      ParserBody body(in, p, c, expect);
      ServerResponse r = options.handler(req, body);
      if (r.status <= 0) return;  // the handler drops the connection (fault injection)
      bool reusable = keep_alive && body.done();
      http::response<http::string_body> res{static_cast<http::status>(r.status), 11};
      for (const auto& [k, v] : r.headers) res.set(k, v);
      res.body() = r.body;
      res.keep_alive(reusable);
      res.prepare_payload();
      std::ostringstream out;
      out << res;
      auto written = tls.write(out.str());
      c.last_activity = now_ms();
      if (!written || !reusable) {
        if (written) tls.shutdown();
        return;
      }
    }
  }
};

StreamServer::StreamServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

StreamServer::~StreamServer() { stop(); }

uint16_t StreamServer::port() const { return impl_->port; }

Result<std::unique_ptr<StreamServer>> StreamServer::start(StreamServerOptions options) {
  std::signal(SIGPIPE, SIG_IGN);
  auto impl = std::make_shared<Impl>();
  impl->options = std::move(options);
  boost::system::error_code ec;
  impl->tls.use_certificate_chain(asio::buffer(impl->options.cert_pem), ec);
  if (!ec) impl->tls.use_private_key(asio::buffer(impl->options.key_pem), ssl::context::pem, ec);
  if (ec) return Error(Errc::kTls, "stream server certificate: " + ec.message());
  std::string listen = impl->options.listen;
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) return Error(Errc::kInvalidArgument, "listen address \"" + listen + "\" has no port");
  auto addr = asio::ip::make_address(listen.substr(0, colon), ec);
  if (ec) return Error(Errc::kInvalidArgument, "listen address \"" + listen + "\": " + ec.message());
  tcp::endpoint ep(addr, static_cast<uint16_t>(std::atoi(listen.substr(colon + 1).c_str())));
  impl->acceptor.open(ep.protocol(), ec);
  if (!ec) impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(ep, ec);
  if (!ec) impl->acceptor.listen(64, ec);
  if (ec) return Error(Errc::kIo, "cannot listen on " + listen + ": " + ec.message());
  impl->port = impl->acceptor.local_endpoint().port();
  Impl* ip = impl.get();
  impl->accept_thread = std::thread([ip] { ip->accept_loop(); });
  impl->watchdog = std::thread([ip] { ip->watch_idle(); });
  return std::unique_ptr<StreamServer>(new StreamServer(std::move(impl)));
}

void StreamServer::stop() {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  ::shutdown(impl_->acceptor.native_handle(), SHUT_RDWR);  // wakes the blocking accept
  if (impl_->accept_thread.joinable()) impl_->accept_thread.join();
  impl_->cv.notify_all();
  if (impl_->watchdog.joinable()) impl_->watchdog.join();
  std::lock_guard lk(impl_->mu);
  for (auto& c : impl_->conns) {
    if (!c->finished) ::shutdown(c->fd, SHUT_RDWR);
  }
  for (auto& c : impl_->conns) c->thread.join();
  impl_->conns.clear();
  boost::system::error_code ec;
  impl_->acceptor.close(ec);
}

}  // namespace kvb::testcluster
