#include "kube/detail/runtime.h"

#include "kube/api_status.h"
#include "version.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <csignal>
#include <future>
#include <random>

namespace kvb::kube::detail {
namespace http = beast::http;
using asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

TcpStream& Connection::lowest() {
  return std::visit([](auto& s) -> TcpStream& { return beast::get_lowest_layer(s); }, stream);
}

void Connection::close() {
  boost::system::error_code ec;
  lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
  lowest().socket().close(ec);
}

void CallState::cancel() {
  cancelled = true;
  if (active) active->close();
  if (waiting) waiting->cancel();
  if (closer) closer();
}

Error transport_error(const Endpoint& ep, std::string_view what, const boost::system::error_code& ec) {
  Error e(Errc::kTransport, std::string(what) + " " + ep.display + ": " + ec.message());
  if (ec == beast::error::timeout || ec == asio::error::timed_out) e.code = Errc::kTimeout;
  // TLS errors after the handshake (a peer that vanished without close_notify)
  // are lost connections; handshake failures are classified by connect().
  return e;
}

std::string tls_verify_detail(Connection& c) {
  auto* tls = std::get_if<TlsStream>(&c.stream);
  if (!tls) return {};
  long rc = SSL_get_verify_result(tls->native_handle());
  if (rc == X509_V_OK) return {};
  return X509_verify_cert_error_string(rc);
}

namespace {

Result<Endpoint> parse_server(const std::string& server, const std::string& tls_server_name) {
  auto u = boost::urls::parse_uri(server);
  if (!u) return Error(Errc::kConfig, "server \"" + server + "\" is not a valid URL: " + u.error().message());
  Endpoint ep;
  std::string scheme(u->scheme());
  if (scheme != "https" && scheme != "http") {
    return Error(Errc::kConfig, "server \"" + server + "\": scheme must be https or http");
  }
  ep.tls = scheme == "https";
  ep.host = std::string(u->encoded_host());
  if (u->host_type() == boost::urls::host_type::ipv6) ep.host = ep.host.substr(1, ep.host.size() - 2);
  if (ep.host.empty()) return Error(Errc::kConfig, "server \"" + server + "\" has no host");
  ep.port = u->has_port() ? std::string(u->port()) : (ep.tls ? "443" : "80");
  ep.base_path = std::string(u->encoded_path());
  while (!ep.base_path.empty() && ep.base_path.back() == '/') ep.base_path.pop_back();
  std::string host_for_header = u->host_type() == boost::urls::host_type::ipv6 ? "[" + ep.host + "]" : ep.host;
  ep.host_header = u->has_port() ? host_for_header + ":" + ep.port : host_for_header;
  ep.verify_name = tls_server_name.empty() ? ep.host : tls_server_name;
  ep.display = scheme + "://" + host_for_header + ":" + ep.port;
  return ep;
}

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

Runtime::Runtime(RestConfig config, RuntimeOptions options, Endpoint endpoint)
    : config_(std::move(config)),
      options_(options),
      endpoint_(std::move(endpoint)),
      credentials_(std::make_unique<CredentialProvider>(config_)),
      limiter_(options.qps, options.burst),
      seed_(std::random_device{}()) {}

Result<std::shared_ptr<Runtime>> Runtime::create(const RestConfig& config, RuntimeOptions options) {
  // A peer that closes while we write must surface as an error, not kill us.
  std::signal(SIGPIPE, SIG_IGN);
  auto ep = parse_server(config.cluster.server, config.cluster.tls_server_name);
  if (!ep) return Error(Errc::kConfig, config.origin + ": " + ep.error().message);
  // Operations on the io thread hold no owning reference, so the last owner is a
  // user thread. Should a user callback on the io thread drop the last client
  // reference anyway, destruction (which joins the io thread) moves to a helper.
  std::shared_ptr<Runtime> rt(new Runtime(config, options, *ep), [](Runtime* r) {
    if (r->in_io_thread()) {
      std::thread([r] { delete r; }).detach();
    } else {
      delete r;
    }
  });
  if (ep->tls) {
    // Build the TLS context up front so that a bad CA or client key is reported
    // at once. Credentials from a plugin are not known yet: the first connect
    // rebuilds the context with them.
    auto initial = rt->credentials_->cached_if_fresh();
    auto ctx = rt->make_tls_context(initial ? *initial : AuthMaterial{});
    if (!ctx) return ctx.error();
    rt->tls_ = *ctx;
    rt->tls_generation_ = initial ? initial->certificate_generation : kNoGeneration;
  }
  std::promise<void> started;
  rt->thread_ = std::thread([r = rt.get(), &started] {
    r->io_thread_id_ = std::this_thread::get_id();
    auto guard = asio::make_work_guard(r->io_);
    started.set_value();
    r->io_.run();
  });
  started.get_future().wait();
  return rt;
}

void Runtime::enter(CallState* op) { active_.insert(op); }

void Runtime::leave(CallState* op) {
  active_.erase(op);
  if (shutting_down_ && active_.empty()) drained_.set_value();
}

Runtime::~Runtime() {
  if (!thread_.joinable()) {  // creation failed before the io thread started
    blocking_.join();
    return;
  }
  // Cancel running execs and watches and let them finish their coroutines
  // (they report kCancelled to their waiters) before the io thread stops.
  auto drained = drained_.get_future();
  asio::post(io_, [this] {
    shutting_down_ = true;
    if (active_.empty()) {
      drained_.set_value();
      return;
    }
    auto ops = active_;
    for (CallState* op : ops) op->cancel();
  });
  drained.wait_for(std::chrono::seconds(30));
  asio::post(io_, [this] {
    for (auto& c : idle_) c->close();
    idle_.clear();
    io_.stop();
  });
  if (thread_.joinable()) thread_.join();
  blocking_.join();
}

std::string Runtime::describe(std::string_view method, std::string_view target) const {
  return std::string(method) + " " + endpoint_.display + endpoint_.base_path + std::string(target);
}

Result<std::shared_ptr<ssl::context>> Runtime::make_tls_context(const AuthMaterial& auth) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  const ClusterInfo& c = config_.cluster;
  if (c.insecure_skip_tls_verify) {
    ctx->set_verify_mode(ssl::verify_none);
  } else {
    ctx->set_verify_mode(ssl::verify_peer);
    if (!c.ca_pem.empty()) {
      ctx->add_certificate_authority(asio::buffer(c.ca_pem), ec);
      if (ec) {
        return Error(Errc::kConfig, "certificate authority from " + c.ca_origin +
                                        " is not a valid PEM certificate: " + ec.message());
      }
    } else {
      ctx->set_default_verify_paths(ec);
    }
    ctx->set_verify_callback(ssl::host_name_verification(endpoint_.verify_name));
  }
  if (!auth.client_certificate_pem.empty()) {
    ctx->use_certificate_chain(asio::buffer(auth.client_certificate_pem), ec);
    if (ec) return Error(Errc::kConfig, "client certificate of " + config_.origin + " is not valid PEM: " + ec.message());
    ctx->use_private_key(asio::buffer(auth.client_key_pem.reveal()), ssl::context::pem, ec);
    if (ec) return Error(Errc::kConfig, "client key of " + config_.origin + " is not a valid PEM key matching the certificate");
  }
  return ctx;
}

asio::awaitable<Result<AuthMaterial>> Runtime::auth() {
  if (auto m = credentials_->cached_if_fresh()) co_return *m;
  // get() may run the exec plugin for seconds: it runs on the helper thread and
  // this coroutine resumes on the io thread with the result. No coroutine lambda
  // and no owning pointer travels with the work (GCC 12 destroyed the captures
  // of a coroutine lambda handed to co_spawn twice, which freed the provider
  // under its users: issue 13 item 9). The provider outlives the work because
  // ~Runtime joins the helper thread before its members are destroyed.
  CredentialProvider* creds = credentials_.get();
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(Result<AuthMaterial>)>(
      [this, creds](auto handler) {
        asio::post(blocking_, [this, creds, handler = std::move(handler)]() mutable {
          Result<AuthMaterial> material = creds->get();
          asio::post(io_, [handler = std::move(handler), material = std::move(material)]() mutable {
            std::move(handler)(std::move(material));
          });
        });
      },
      asio::use_awaitable);
}

asio::awaitable<Result<std::unique_ptr<Connection>>> Runtime::connect(SteadyTime deadline, CallState& state) {
  auto material = co_await auth();
  if (!material) co_return material.error();
  if (endpoint_.tls && material->certificate_generation != tls_generation_) {
    auto ctx = make_tls_context(*material);
    if (!ctx) co_return ctx.error();
    tls_ = *ctx;
    tls_generation_ = material->certificate_generation;
  }
  tcp::resolver resolver(io_);
  auto [rec, results] = co_await resolver.async_resolve(endpoint_.host, endpoint_.port, use_tuple);
  if (rec) co_return transport_error(endpoint_, "cannot resolve", rec);
  if (state.cancelled) co_return Error(Errc::kCancelled, "cancelled");

  auto conn = std::make_unique<Connection>(Connection{
      endpoint_.tls ? std::variant<TcpStream, TlsStream>(std::in_place_type<TlsStream>, io_, *tls_)
                    : std::variant<TcpStream, TlsStream>(std::in_place_type<TcpStream>, io_),
      {}, tls_, tls_generation_, {}, false});
  // Beast reads max(512, free capacity) bytes a step: room for several TLS
  // records, or a large list is read 512 bytes per scheduler round trip.
  conn->buffer.reserve(64 << 10);
  state.active = conn.get();
  TcpStream& tcp_layer = conn->lowest();
  tcp_layer.expires_at(std::min(deadline, std::chrono::steady_clock::now() + options_.connect_timeout));
  auto [cec, ep] = co_await tcp_layer.async_connect(results, use_tuple);
  if (cec) {
    state.active = nullptr;
    if (state.cancelled) co_return Error(Errc::kCancelled, "cancelled");
    co_return transport_error(endpoint_, "cannot connect to", cec);
  }
  tcp_layer.socket().set_option(tcp::no_delay(true));
  if (auto* tls = std::get_if<TlsStream>(&conn->stream)) {
    if (!is_ip_literal(endpoint_.verify_name)) {
      SSL_set_tlsext_host_name(tls->native_handle(), endpoint_.verify_name.c_str());
    }
    auto [hec] = co_await tls->async_handshake(ssl::stream_base::client, use_tuple);
    if (hec) {
      state.active = nullptr;
      if (state.cancelled) co_return Error(Errc::kCancelled, "cancelled");
      std::string detail = tls_verify_detail(*conn);
      Error e = transport_error(endpoint_, "TLS handshake with", hec);
      e.code = hec == beast::error::timeout ? Errc::kTimeout : Errc::kTls;
      if (!detail.empty()) {
        e.message = "TLS certificate of " + endpoint_.display + " cannot be verified: " + detail +
                    " (check certificate-authority in " + config_.origin + ")";
      } else if (std::string(hec.message()).find("certificate") != std::string::npos) {
        e.message += " (the server may require a client certificate)";
      }
      co_return e;
    }
  }
  state.active = nullptr;
  co_return conn;
}

std::unique_ptr<Connection> Runtime::take_idle(uint64_t generation) {
  auto now = std::chrono::steady_clock::now();
  while (!idle_.empty()) {
    std::unique_ptr<Connection> c = std::move(idle_.back());
    idle_.pop_back();
    if (c->certificate_generation == generation && now - c->idle_since < options_.idle_timeout) {
      c->reused = true;
      return c;
    }
    c->close();
  }
  return nullptr;
}

void Runtime::put_idle(std::unique_ptr<Connection> c) {
  if (idle_.size() >= options_.max_idle_connections) {
    c->close();
    return;
  }
  c->idle_since = std::chrono::steady_clock::now();
  idle_.push_back(std::move(c));
}

template <class Request>
void Runtime::decorate(Request& req, const AuthMaterial& auth) const {
  req.set(http::field::host, endpoint_.host_header);
  req.set(http::field::user_agent, std::string("kvbackup/") + kKvbackupVersion + " (linux)");
  if (req.find(http::field::accept) == req.end()) req.set(http::field::accept, "application/json");
  if (auth.authorization) req.set(http::field::authorization, auth.authorization->reveal());
}

namespace {

template <class Stream>
asio::awaitable<boost::system::error_code> exchange(Stream& s, beast::flat_buffer& buffer,
                                                    http::request<http::string_body>& req,
                                                    http::response_parser<http::string_body>& parser,
                                                    bool* sent) {
  auto [wec, wn] = co_await http::async_write(s, req, use_tuple);
  if (wec) {
    if (wn > 0) *sent = true;
    co_return wec;
  }
  *sent = true;
  auto [rec, rn] = co_await http::async_read(s, buffer, parser, use_tuple);
  co_return rec;
}

}  // namespace

asio::awaitable<Result<HttpResponse>> Runtime::attempt(const HttpRequest& r, std::chrono::milliseconds timeout,
                                                       CallState& state, bool* sent) {
  *sent = false;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto material = co_await auth();
  if (!material) co_return material.error();

  http::request<http::string_body> req;
  req.method_string(r.method);
  req.target(endpoint_.base_path + r.target);
  req.version(11);
  for (const auto& [k, v] : r.headers) req.set(k, v);
  decorate(req, *material);
  req.keep_alive(true);
  req.body() = r.body;
  req.prepare_payload();

  for (int round = 0; round < 2; ++round) {
    std::unique_ptr<Connection> conn = round == 0 ? take_idle(tls_generation_) : nullptr;
    if (!conn) {
      auto fresh = co_await connect(deadline, state);
      if (!fresh) co_return fresh.error();
      conn = std::move(*fresh);
    }
    bool reused = conn->reused;
    state.active = conn.get();
    conn->lowest().expires_at(deadline);
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::uint64_t{1} << 31);
    parser.header_limit(1 << 20);
    bool round_sent = false;
    boost::system::error_code ec = co_await std::visit(
        [&](auto& s) { return exchange(s, conn->buffer, req, parser, &round_sent); }, conn->stream);
    state.active = nullptr;
    if (state.cancelled) co_return Error(Errc::kCancelled, "cancelled");
    if (ec) {
      conn->close();
      // A pooled connection the server already closed: the request did not reach
      // it if nothing at all came back; try once on a fresh connection.
      bool stale = reused && parser.got_some() == false &&
                   (ec == http::error::end_of_stream || ec == asio::error::connection_reset ||
                    ec == asio::error::broken_pipe || ec == asio::error::eof ||
                    ec == asio::ssl::error::stream_truncated);
      if (stale && round == 0 && (is_idempotent(r.method) || !round_sent)) continue;
      *sent = *sent || round_sent;
      if (ec == beast::error::timeout) {
        co_return Error(Errc::kTimeout, describe(r.method, r.target) + ": no complete response within " +
                                            std::to_string(timeout.count()) + " ms");
      }
      if (parser.got_some()) {
        co_return Error(Errc::kTransport, describe(r.method, r.target) +
                                              ": connection closed mid-response (" + ec.message() + ")");
      }
      co_return transport_error(endpoint_, describe(r.method, r.target) + ": request to", ec);
    }
    *sent = true;
    auto msg = parser.release();
    HttpResponse out;
    out.status = static_cast<int>(msg.result_int());
    for (const auto& f : msg) out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    out.body = std::move(msg.body());
    if (msg.keep_alive()) {
      put_idle(std::move(conn));
    } else {
      conn->close();
    }
    co_return out;
  }
  co_return Error(Errc::kTransport, describe(r.method, r.target) + ": connection lost");
}

asio::awaitable<void> Runtime::sleep(std::chrono::nanoseconds d, CallState& state) {
  if (d.count() <= 0 || state.cancelled) co_return;
  asio::steady_timer t(io_, d);
  state.waiting = &t;
  co_await t.async_wait(use_tuple);
  state.waiting = nullptr;
}

asio::awaitable<Result<HttpResponse>> Runtime::call(HttpRequest req, CallOptions o, std::shared_ptr<CallState> state) {
  auto timeout = o.timeout.count() > 0 ? o.timeout : options_.request_timeout;
  auto budget = o.retry_budget.count() > 0 ? o.retry_budget : options_.retry_budget;
  Backoff backoff(options_.backoff, budget, seed_ + reinterpret_cast<uintptr_t>(state.get()));
  auto start = std::chrono::steady_clock::now();
  bool refreshed = false;
  for (int attempt_no = 1;; ++attempt_no) {
    if (!o.critical) co_await sleep(limiter_.reserve(), *state);
    if (state->cancelled) co_return Error(Errc::kCancelled, describe(req.method, req.target) + ": cancelled");
    bool sent = false;
    auto r = co_await attempt(req, timeout, *state, &sent);
    if (state->cancelled) co_return Error(Errc::kCancelled, describe(req.method, req.target) + ": cancelled");
    Error err;
    if (r) {
      if (r->status < 400) co_return r;
      err = error_from_response(r->status, r->body, r->header("Retry-After"), describe(req.method, req.target));
    } else {
      err = r.error();
    }
    if (err.code == Errc::kUnauthorized && !refreshed && credentials_->refreshable()) {
      refreshed = true;
      credentials_->invalidate();
      continue;
    }
    bool safe = is_idempotent(req.method) || o.repeatable || !sent || err.code == Errc::kTooManyRequests;
    if (!o.retry || !safe) co_return err;
    auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    auto delay = backoff.next_delay(err, attempt_no, elapsed);
    if (!delay) {
      if (attempt_no > 1 && err.is_transient()) err.message += " (after " + std::to_string(attempt_no) + " attempts)";
      co_return err;
    }
    co_await sleep(*delay, *state);
  }
}

Result<HttpResponse> Runtime::run_call(HttpRequest req, const CallOptions& o) {
  if (in_io_thread()) {
    return Error(Errc::kInternal, "kube client: blocking call made from the client's own io thread");
  }
  auto state = std::make_shared<CallState>();
  std::promise<Result<HttpResponse>> done;
  auto fut = done.get_future();
  asio::co_spawn(io_, call(std::move(req), o, state),
                 [&done](std::exception_ptr e, Result<HttpResponse> r) {
                   if (e) {
                     try {
                       std::rethrow_exception(e);
                     } catch (const std::exception& ex) {
                       done.set_value(Error(Errc::kInternal, std::string("kube client: ") + ex.what()));
                     }
                   } else {
                     done.set_value(std::move(r));
                   }
                 });
  std::optional<std::stop_callback<std::function<void()>>> on_stop;
  if (o.stop.stop_possible()) {
    on_stop.emplace(o.stop, std::function<void()>([this, state] { asio::post(io_, [state] { state->cancel(); }); }));
  }
  return fut.get();
}

template void Runtime::decorate(http::request<http::string_body>&, const AuthMaterial&) const;
template void Runtime::decorate(http::request<http::empty_body>&, const AuthMaterial&) const;

}  // namespace kvb::kube::detail
