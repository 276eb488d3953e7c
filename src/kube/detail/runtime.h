// Runtime: the network engine behind kube::Client (internal to src/kube).
//
// It owns one io_context and the single thread that runs it; every socket,
// timer and coroutine of a client lives on that thread, so no strands or locks
// are needed for connection state. Public client calls block their own thread
// on a future while the work runs here, which lets hundreds of concurrent calls
// (and exec streams) share one thread.
//
// Also here: connecting with TLS verification (CA, hostname or tls-server-name,
// client certificates), a keep-alive connection pool, per-call cancellation,
// rate limiting, retries with backoff, and credential refresh after a 401.
//
// This header pulls in Asio and Beast: include it only from src/kube/*.cpp.
#pragma once

#include "common/error.h"
#include "kube/backoff.h"
#include "kube/config.h"
#include "kube/credentials.h"
#include "kube/http.h"
#include "kube/rate_limiter.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <functional>
#include <future>
#include <memory>
#include <set>
#include <thread>
#include <variant>

namespace kvb::kube::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = boost::asio::ssl;

using TcpStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using SteadyTime = std::chrono::steady_clock::time_point;

struct Endpoint {
  bool tls = true;
  std::string host;         // as in the URL, without brackets
  std::string port;
  std::string base_path;    // URL path prefix, no trailing slash
  std::string host_header;  // host[:port] as sent in Host
  std::string verify_name;  // tls-server-name or host
  std::string display;      // "https://host:port" for messages
};

struct Connection {
  std::variant<TcpStream, TlsStream> stream;
  beast::flat_buffer buffer;
  std::shared_ptr<ssl::context> tls_context;  // keeps the SSL_CTX of this connection alive
  uint64_t certificate_generation = 0;
  SteadyTime idle_since{};
  bool reused = false;

  TcpStream& lowest();
  void close();
};

// State shared between a call and whoever cancels it (a stop_token callback).
// Touched only on the io thread.
struct CallState {
  bool cancelled = false;
  Connection* active = nullptr;            // the connection in use, to close on cancel
  asio::steady_timer* waiting = nullptr;   // the timer being waited on, to cancel
  std::function<void()> closer;            // closes a stream that left its Connection (WebSocket)
  void cancel();
};

struct RuntimeOptions {
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds request_timeout{30'000};
  std::chrono::milliseconds retry_budget{60'000};
  BackoffPolicy backoff;
  double qps = 200;
  int burst = 400;
  size_t max_idle_connections = 64;
  std::chrono::seconds idle_timeout{60};
};

class Runtime {
 public:
  static Result<std::shared_ptr<Runtime>> create(const RestConfig& config, RuntimeOptions options);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  asio::io_context& io() { return io_; }
  const Endpoint& endpoint() const { return endpoint_; }
  const RuntimeOptions& options() const { return options_; }
  RateLimiter& limiter() { return limiter_; }
  const RestConfig& config() const { return config_; }
  std::string describe(std::string_view method, std::string_view target) const;

  // Credentials without blocking the io thread (plugins run on a helper thread).
  asio::awaitable<Result<AuthMaterial>> auth();
  void invalidate_auth() { credentials_->invalidate(); }
  bool auth_refreshable() const { return credentials_->refreshable(); }

  // A new connection (TCP + TLS handshake + verification) within the deadline.
  asio::awaitable<Result<std::unique_ptr<Connection>>> connect(SteadyTime deadline, CallState& state);
  // An idle keep-alive connection (current credentials) to upgrade to a
  // WebSocket, sparing a TCP and TLS handshake; nullptr when none.
  std::unique_ptr<Connection> reuse_idle() { return take_idle(tls_generation_); }

  // One HTTP exchange on a pooled or new connection. Non-2xx responses are
  // returned as responses, not errors. *sent tells whether the request may
  // have reached the server (for retry safety of non-idempotent calls).
  asio::awaitable<Result<HttpResponse>> attempt(const HttpRequest& req, std::chrono::milliseconds timeout,
                                                CallState& state, bool* sent);

  // The full call: rate limiting, attempts, backoff, 401 refresh. Responses
  // with status >= 400 become Errors decoded from the Status body.
  asio::awaitable<Result<HttpResponse>> call(HttpRequest req, CallOptions options,
                                             std::shared_ptr<CallState> state);

  // Waits on a timer registered in `state` so that cancel() interrupts it.
  asio::awaitable<void> sleep(std::chrono::nanoseconds d, CallState& state);

  // Adds Host, User-Agent, Accept, Authorization to a Beast request.
  template <class Request>
  void decorate(Request& req, const AuthMaterial& auth) const;

  // Runs `op` on the io thread and blocks the caller until it finishes or
  // `stop` is requested (then the call is cancelled and kCancelled returned).
  // Must not be called from the io thread.
  Result<HttpResponse> run_call(HttpRequest req, const CallOptions& options);

  bool in_io_thread() const { return std::this_thread::get_id() == io_thread_id_; }

  // Long-lived operations (exec sessions, informers) register while they run so
  // that destroying the client cancels them and waits until they have ended.
  // Both are called on the io thread.
  void enter(CallState* op);
  void leave(CallState* op);

 private:
  Runtime(RestConfig config, RuntimeOptions options, Endpoint endpoint);
  Result<std::shared_ptr<ssl::context>> make_tls_context(const AuthMaterial& auth);
  std::unique_ptr<Connection> take_idle(uint64_t cert_generation);
  void put_idle(std::unique_ptr<Connection> c);

  RestConfig config_;
  RuntimeOptions options_;
  Endpoint endpoint_;
  // Owned here alone. The helper thread (blocking_) runs exec plugins through a
  // plain pointer to it; ~Runtime joins that thread before members are
  // destroyed, and credentials_ is declared before blocking_, so it is
  // destroyed after it.
  std::unique_ptr<CredentialProvider> credentials_;
  RateLimiter limiter_;
  asio::io_context io_;
  asio::thread_pool blocking_{1};  // exec credential plugins
  std::shared_ptr<ssl::context> tls_;  // for the current certificate generation
  static constexpr uint64_t kNoGeneration = ~uint64_t{0};
  uint64_t tls_generation_ = kNoGeneration;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::set<CallState*> active_;     // io thread only
  bool shutting_down_ = false;      // io thread only
  std::promise<void> drained_;
  std::thread thread_;
  std::thread::id io_thread_id_;
  uint64_t seed_ = 0;
};

// Exchange helpers used by watch.cpp and exec.cpp too.
Error transport_error(const Endpoint& ep, std::string_view what, const boost::system::error_code& ec);
std::string tls_verify_detail(Connection& c);

}  // namespace kvb::kube::detail
