#include "testcluster/export/export_server.h"

#include "testcluster/export/http_ranges.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <zlib.h>

#include <atomic>
#include <fcntl.h>
#include <mutex>
#include <set>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace kvb::testcluster {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
namespace json = boost::json;
using tcp = asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {

constexpr size_t kBlock = size_t{1} << 20;
constexpr const char* kPrefix = "/api/export.kubevirt.io/v1beta1/namespaces/";
constexpr const char* kTokenName = "x-kubevirt-export-token";

std::string percent_decode(std::string_view s) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else {
      out += s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

std::string query_value(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    size_t eq = kv.find('=');
    if (percent_decode(kv.substr(0, eq)) == key) return eq == std::string_view::npos ? "" : percent_decode(kv.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

// Constant-time: compares SHA-256 digests, so neither content nor length leaks.
bool token_matches(const std::string& given, const std::string& expected) {
  unsigned char a[32], b[32];
  unsigned int n = 0;
  EVP_Digest(given.data(), given.size(), a, &n, EVP_sha256(), nullptr);
  EVP_Digest(expected.data(), expected.size(), b, &n, EVP_sha256(), nullptr);
  return !expected.empty() && CRYPTO_memcmp(a, b, sizeof a) == 0;
}

const char* reason_of(int status) {
  switch (status) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 416: return "Requested Range Not Satisfiable";
    default: return "Internal Server Error";
  }
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

struct ExportServer::Impl : std::enable_shared_from_this<ExportServer::Impl> {
  KeyPair ca;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  ssl::context tls{ssl::context::tls_server};
  asio::strand<asio::io_context::executor_type> accept_strand{asio::make_strand(io)};
  tcp::acceptor acceptor{accept_strand};
  std::vector<std::thread> threads;
  uint16_t port = 0;

  mutable std::mutex mu;
  std::map<std::string, ExportEntry> table;  // "ns/name"
  std::map<std::string, std::shared_ptr<ssl::context>> pod_tls;  // "ns/name": the exporter pod's certificate
  std::set<int> open_fds;
  json::array log;
  int64_t restarts = 0;
  std::atomic<uint64_t> epoch{0};
  std::atomic<bool> armed{false};
  std::atomic<int64_t> budget{0};  // bytes left before the next restart while armed
  int64_t restart_every = 0, restart_times_left = 0;
  bool stopping = false;

  // Counts served bytes; closes every connection when an armed restart is due.
  void served(int64_t n) {
    if (!armed.load()) return;
    if (budget.fetch_sub(n) - n > 0) return;
    std::lock_guard lock(mu);
    if (!armed.load() || budget.load() > 0) return;
    ++restarts;
    ++epoch;
    if (restart_times_left == 1) {
      armed = false;
    } else {
      if (restart_times_left > 1) --restart_times_left;
      budget = restart_every;
    }
    for (int fd : open_fds) ::shutdown(fd, SHUT_RDWR);
  }

  void record(json::object entry) {
    std::lock_guard lock(mu);
    if (log.size() < 100000) log.push_back(std::move(entry));
  }

  asio::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    for (;;) {
      tcp::socket sock(asio::make_strand(io));
      auto [ec] = co_await acceptor.async_accept(sock, use_tuple);
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
        continue;
      }
      sock.set_option(tcp::no_delay(true));
      auto ex = sock.get_executor();
      asio::co_spawn(ex, connection(std::move(sock)), asio::detached);
    }
  }

  template <class Stream>
  static asio::awaitable<bool> write(Stream& s, const void* data, size_t n) {
    auto [ec, w] = co_await asio::async_write(s, asio::buffer(data, n), use_tuple);
    co_return !ec;
  }

  // One client connection through the proxy (the export is named in the path).
  asio::awaitable<void> connection(tcp::socket sock) {
    auto self = shared_from_this();
    ssl::stream<tcp::socket> stream(std::move(sock), tls);
    co_await serve(stream, std::string());
  }

  // One connection to an exporter pod's port: the pod's own certificate,
  // paths /volumes/<claim>/<file> of `pod_export` ("ns/name") only.
  asio::awaitable<void> pod_connection(asio::local::stream_protocol::socket sock, std::shared_ptr<ssl::context> ctx,
                                       std::string pod_export) {
    auto self = shared_from_this();
    ssl::stream<asio::local::stream_protocol::socket> stream(std::move(sock), *ctx);
    co_await serve(stream, pod_export);
  }

  template <class TlsStream>
  asio::awaitable<void> serve(TlsStream& stream, const std::string& pod_export) {
    const int fd = stream.next_layer().native_handle();
    const uint64_t my_epoch = epoch.load();
    {
      std::lock_guard lock(mu);
      if (stopping) co_return;
      open_fds.insert(fd);
    }
    auto [hec] = co_await stream.async_handshake(ssl::stream_base::server, use_tuple);
    if (!hec) {
      beast::flat_buffer buffer;
      for (;;) {
        http::request_parser<http::empty_body> parser;
        parser.header_limit(16 * 1024);
        auto [rec, rn] = co_await http::async_read(stream, buffer, parser, use_tuple);
        if (rec || epoch.load() != my_epoch) break;
        auto req = parser.release();
        bool keep = co_await handle(stream, req, my_epoch, pod_export);
        if (!keep || !req.keep_alive()) break;
      }
    }
    {
      std::lock_guard lock(mu);
      open_fds.erase(fd);
    }
    boost::system::error_code ec;
    stream.next_layer().close(ec);
  }

  template <class Stream>
  asio::awaitable<bool> simple(Stream& s, int status, const std::string& body, const std::string& extra = {}) {
    std::string head = "HTTP/1.1 " + std::to_string(status) + " " + reason_of(status) +
                       "\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\n" + extra + "\r\n" + body;
    co_return co_await write(s, head.data(), head.size());
  }

  // Sends [start, start+len) of the file; false when the connection is gone.
  template <class Stream>
  asio::awaitable<bool> send_range(Stream& s, int file, uint64_t start, uint64_t len, uint64_t my_epoch, int64_t& sent) {
    std::vector<char> buf(kBlock);
    while (len > 0) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(len, kBlock));
      ssize_t r = ::pread(file, buf.data(), n, static_cast<off_t>(start));
      if (r <= 0) co_return false;
      if (epoch.load() != my_epoch || !co_await write(s, buf.data(), static_cast<size_t>(r))) co_return false;
      sent += r;
      served(r);
      start += static_cast<uint64_t>(r);
      len -= static_cast<uint64_t>(r);
    }
    co_return true;
  }

  template <class Stream>
  asio::awaitable<bool> send_gzip(Stream& s, int file, uint64_t size, uint64_t my_epoch, int64_t& sent) {
    z_stream z{};
    if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) co_return false;
    std::vector<unsigned char> in(kBlock), out(kBlock + 1024);
    bool alive = true;
    uint64_t pos = 0;
    for (bool last = false; alive && !last;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(size - pos, kBlock));
      ssize_t r = n == 0 ? 0 : ::pread(file, in.data(), n, static_cast<off_t>(pos));
      if (r < 0) {
        alive = false;
        break;
      }
      pos += static_cast<uint64_t>(r);
      last = pos >= size || r == 0;
      z.next_in = in.data();
      z.avail_in = static_cast<uInt>(r);
      do {
        z.next_out = out.data();
        z.avail_out = static_cast<uInt>(out.size());
        deflate(&z, last ? Z_FINISH : Z_NO_FLUSH);
        size_t have = out.size() - z.avail_out;
        if (have == 0) continue;
        char hex[32];
        int hn = std::snprintf(hex, sizeof hex, "%zx\r\n", have);
        if (epoch.load() != my_epoch || !co_await write(s, hex, static_cast<size_t>(hn)) ||
            !co_await write(s, out.data(), have) || !co_await write(s, "\r\n", 2)) {
          alive = false;
          break;
        }
        sent += static_cast<int64_t>(have);
        served(static_cast<int64_t>(have));
      } while (z.avail_out == 0);
    }
    deflateEnd(&z);
    if (alive) alive = co_await write(s, "0\r\n\r\n", 5);
    co_return alive;
  }

  template <class Stream>
  asio::awaitable<bool> handle(Stream& s, const http::request<http::empty_body>& req, uint64_t my_epoch,
                               const std::string& pod_export) {
    std::string target(req.target());
    size_t q = target.find('?');
    std::string path = percent_decode(std::string_view(target).substr(0, q));
    std::string query = q == std::string::npos ? "" : target.substr(q + 1);
    std::string method(req.method_string());
    json::object entry{{"method", method}, {"range", std::string(req[http::field::range])}, {"restartsBefore", my_epoch}};
    auto answer = [&](int status, std::string body) -> asio::awaitable<bool> {
      entry["status"] = status;
      record(entry);
      co_return co_await simple(s, status, body + "\n");
    };
    // <ns>/virtualmachineexports/<name>/volumes/<claim>/<file>
    std::vector<std::string> parts;
    if (!pod_export.empty() && path.rfind("/volumes/", 0) == 0) {
      // The exporter pod's own layout: the export is the pod's.
      size_t slash = pod_export.find('/');
      path = std::string(kPrefix) + pod_export.substr(0, slash) + "/virtualmachineexports/" + pod_export.substr(slash + 1) + path;
    }
    if (path.rfind(kPrefix, 0) == 0 && (pod_export.empty() || path.find("/volumes/") != std::string::npos)) {
      std::string rest = path.substr(std::strlen(kPrefix));
      size_t p = 0;
      while (p <= rest.size()) {
        size_t slash = rest.find('/', p);
        parts.push_back(rest.substr(p, slash == std::string::npos ? std::string::npos : slash - p));
        if (slash == std::string::npos) break;
        p = slash + 1;
      }
    }
    if (parts.size() != 6 || parts[1] != "virtualmachineexports" || parts[3] != "volumes" ||
        (parts[5] != "disk.img" && parts[5] != "disk.img.gz")) {
      co_return co_await answer(404, "404 page not found");
    }
    if (!pod_export.empty() && parts[0] + "/" + parts[2] != pod_export) co_return co_await answer(404, "404 page not found");
    entry["export"] = parts[0] + "/" + parts[2];
    if (!pod_export.empty()) entry["via"] = "pod";
    entry["claim"] = parts[4];
    entry["format"] = parts[5] == "disk.img" ? "raw" : "gzip";
    if (method != "GET" && method != "HEAD") co_return co_await answer(405, "method not allowed");
    std::string token, file;
    bool found = false;
    {
      std::lock_guard lock(mu);
      auto it = table.find(parts[0] + "/" + parts[2]);
      if (it != table.end()) {
        token = it->second.token;
        auto v = it->second.volumes.find(parts[4]);
        if (v != it->second.volumes.end()) {
          file = v->second.file.string();
          found = true;
        }
      }
    }
    std::string given(req[kTokenName]);
    if (given.empty()) given = query_value(query, kTokenName);
    if (token.empty() || !token_matches(given, token)) co_return co_await answer(401, "Unauthorized");
    if (!found) co_return co_await answer(404, "404 page not found");
    Fd f{::open(file.c_str(), O_RDONLY | O_CLOEXEC)};
    struct stat st {};
    if (f.fd < 0 || ::fstat(f.fd, &st) != 0) co_return co_await answer(500, "cannot open the volume");
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    const int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec);
    int64_t sent = 0;
    bool alive = true;
    const bool head_only = method == "HEAD";
    if (parts[5] == "disk.img.gz") {
      std::string h = "HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\nTransfer-Encoding: chunked\r\n\r\n";
      if (head_only) h = "HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\nContent-Length: 0\r\n\r\n";
      alive = co_await write(s, h.data(), h.size());
      if (alive && !head_only) alive = co_await send_gzip(s, f.fd, size, my_epoch, sent);
      entry["status"] = 200;
    } else {
      RangePlan plan = plan_ranges(std::string(req[http::field::range]), std::string(req[http::field::if_range]), size, mtime);
      std::string common = "Accept-Ranges: bytes\r\nLast-Modified: " + http_date(mtime) + "\r\n";
      entry["status"] = plan.status;
      if (plan.status == 416) {
        record(entry);
        co_return co_await simple(s, 416, "invalid range: failed to overlap\n", "Content-Range: bytes */" + std::to_string(size) + "\r\n");
      }
      const std::string type = "application/octet-stream";
      if (plan.ranges.size() <= 1) {
        ByteRange r = plan.ranges.empty() ? ByteRange{0, size} : plan.ranges.front();
        std::string h = "HTTP/1.1 " + std::to_string(plan.status) + " " + reason_of(plan.status) + "\r\n" + common +
                        "Content-Type: " + type + "\r\nContent-Length: " + std::to_string(r.length) + "\r\n";
        if (!plan.ranges.empty()) h += "Content-Range: " + r.content_range(size) + "\r\n";
        h += "\r\n";
        alive = co_await write(s, h.data(), h.size());
        if (alive && !head_only) alive = co_await send_range(s, f.fd, r.start, r.length, my_epoch, sent);
      } else {
        Multipart m = multipart_framing(plan.ranges, size, type, "kvbackuptestclusterboundary" + std::to_string(mtime));
        std::string h = "HTTP/1.1 206 Partial Content\r\n" + common + "Content-Type: multipart/byteranges; boundary=" +
                        m.boundary + "\r\nContent-Length: " + std::to_string(m.total(plan.ranges)) + "\r\n\r\n";
        alive = co_await write(s, h.data(), h.size());
        for (size_t i = 0; alive && !head_only && i < plan.ranges.size(); ++i) {
          alive = co_await write(s, m.part_headers[i].data(), m.part_headers[i].size()) &&
                  co_await send_range(s, f.fd, plan.ranges[i].start, plan.ranges[i].length, my_epoch, sent);
        }
        if (alive && !head_only) alive = co_await write(s, m.closing.data(), m.closing.size());
      }
    }
    entry["bytes"] = sent;
    entry["complete"] = alive;
    record(entry);
    co_return alive;
  }
};

ExportServer::ExportServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

ExportServer::~ExportServer() { stop(); }

Result<std::unique_ptr<ExportServer>> ExportServer::start(const KeyPair& ca, unsigned threads) {
  CertSpec spec;
  spec.common_name = "virt-exportproxy";
  spec.dns_names = {"localhost", "virt-exportproxy.kubevirt.svc"};
  spec.ip_addresses = {"127.0.0.1"};
  auto cert = issue_certificate(ca, spec);
  if (!cert) return cert.error();
  auto impl = std::make_shared<Impl>();
  impl->ca = ca;
  boost::system::error_code ec;
  impl->tls.use_certificate_chain(asio::buffer(cert->cert_pem), ec);
  if (!ec) impl->tls.use_private_key(asio::buffer(cert->key_pem), ssl::context::pem, ec);
  if (ec) return Error(Errc::kInternal, "export server certificate: " + ec.message());
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
  impl->acceptor.open(ep.protocol(), ec);
  if (!ec) impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(ep, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Error(Errc::kIo, "export server cannot listen: " + ec.message());
  impl->port = impl->acceptor.local_endpoint().port();
  asio::co_spawn(impl->accept_strand, impl->accept_loop(), asio::detached);
  for (unsigned i = 0; i < std::max(1u, threads); ++i) impl->threads.emplace_back([p = impl.get()] { p->io.run(); });
  return std::unique_ptr<ExportServer>(new ExportServer(std::move(impl)));
}

void ExportServer::stop() {
  if (!impl_ || impl_->threads.empty()) return;
  asio::post(impl_->accept_strand, [p = impl_.get()] {
    boost::system::error_code ec;
    p->acceptor.close(ec);
  });
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
    impl_->table.clear();
    for (int fd : impl_->open_fds) ::shutdown(fd, SHUT_RDWR);
  }
  impl_->work.reset();  // the threads end when the last connection has
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
}

std::string ExportServer::url() const { return "https://127.0.0.1:" + std::to_string(impl_->port); }

std::string ExportServer::volumes_path(const std::string& ns, const std::string& name) {
  return std::string(kPrefix) + ns + "/virtualmachineexports/" + name + "/volumes/";
}

void ExportServer::publish(const std::string& ns, const std::string& name, ExportEntry entry) {
  std::lock_guard lock(impl_->mu);
  impl_->table[ns + "/" + name] = std::move(entry);
}

void ExportServer::withdraw(const std::string& ns, const std::string& name) {
  std::lock_guard lock(impl_->mu);
  impl_->table.erase(ns + "/" + name);
  impl_->pod_tls.erase(ns + "/" + name);
}

Result<int> ExportServer::connect_pod(const std::string& ns, const std::string& name) {
  const std::string key = ns + "/" + name;
  std::shared_ptr<ssl::context> ctx;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopping || !impl_->table.count(key)) {
      return Error(Errc::kTransport, "connect: connection refused (the exporter of " + key + " is not serving)");
    }
    if (auto it = impl_->pod_tls.find(key); it != impl_->pod_tls.end()) ctx = it->second;
  }
  if (!ctx) {
    // The exporter pod's certificate: the Service's names, from the export CA (links.internal.cert).
    CertSpec spec;
    const std::string service = "virt-export-" + name;
    spec.common_name = service;
    spec.dns_names = {service, service + "." + ns, service + "." + ns + ".svc", service + "." + ns + ".svc.cluster.local"};
    auto cert = issue_certificate(impl_->ca, spec);
    if (!cert) return cert.error();
    ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
    boost::system::error_code ec;
    ctx->use_certificate_chain(asio::buffer(cert->cert_pem), ec);
    if (!ec) ctx->use_private_key(asio::buffer(cert->key_pem), ssl::context::pem, ec);
    if (ec) return Error(Errc::kInternal, "exporter pod certificate: " + ec.message());
    std::lock_guard lock(impl_->mu);
    impl_->pod_tls.emplace(key, ctx);
  }
  using local = asio::local::stream_protocol;
  local::socket server_end(asio::make_strand(impl_->io)), client_end(impl_->io);
  boost::system::error_code ec;
  asio::local::connect_pair(server_end, client_end, ec);
  if (ec) return Error(Errc::kIo, "exporter pod connection: " + ec.message());
  int fd = client_end.release(ec);
  if (ec) return Error(Errc::kIo, "exporter pod connection: " + ec.message());
  auto ex = server_end.get_executor();
  asio::co_spawn(ex, impl_->pod_connection(std::move(server_end), ctx, key), asio::detached);
  return fd;
}

void ExportServer::arm_restart(int64_t after_bytes, int64_t times) {
  std::lock_guard lock(impl_->mu);
  impl_->restart_every = std::max<int64_t>(1, after_bytes);
  impl_->restart_times_left = times;
  impl_->budget = impl_->restart_every;
  impl_->armed = true;
}

json::object ExportServer::stats() const {
  std::lock_guard lock(impl_->mu);
  return json::object{{"requests", impl_->log}, {"restarts", impl_->restarts}};
}

void ExportServer::clear_stats() {
  std::lock_guard lock(impl_->mu);
  impl_->log.clear();
  impl_->restarts = 0;
}

}  // namespace kvb::testcluster
