#include "kube/exec.h"

#include "kube/api_status.h"
#include "kube/detail/runtime.h"
#include "kube/detail/signal.h"
#include "kube/detail/websocket_setup.h"
#include "kube/exec_protocol.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <deque>

namespace kvb::kube {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {

class ExecSessionImpl : public ExecSession, public std::enable_shared_from_this<ExecSessionImpl> {
 public:
  ExecSessionImpl(const std::shared_ptr<Client>& client, ExecRequest req, ExecObserver obs)
      : weak_rt_(client->runtime_ptr()), rt_(client->runtime()), req_(std::move(req)), obs_(std::move(obs)),
        wake_(rt_.io().get_executor()), writer_done_(rt_.io().get_executor()) {}

  // Runs fn on the io thread unless the client is gone (then the session has ended).
  template <class F>
  void on_io(F&& fn) {
    if (auto rt = weak_rt_.lock()) asio::post(rt->io(), std::forward<F>(fn));
  }

  void write_stdin(std::string data) override {
    on_io([self = shared_from_this(), data = std::move(data)]() mutable {
      self->outbox_.push_back(encode_exec_frame(ExecChannel::kStdin, data));
      self->wake_.notify();
    });
  }

  void close_stdin() override {
    on_io([self = shared_from_this()] {
      self->close_stdin_requested_ = true;
      if (self->protocol_ == kExecProtocolV5) {
        self->outbox_.push_back(encode_exec_frame(ExecChannel::kClose, std::string(1, '\0')));
        self->wake_.notify();
      }
    });
  }

  void cancel() override {
    on_io([self = shared_from_this()] {
      if (self->finished_io_) return;
      self->cancelled_ = true;
      self->state_.cancel();
    });
  }

  ExecResult wait() override {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return finished_; });
    return result_;
  }

  std::optional<ExecResult> wait_for(std::chrono::milliseconds d) override {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, d, [&] { return finished_; })) return std::nullopt;
    return result_;
  }

  bool done() const override {
    std::lock_guard lock(mu_);
    return finished_;
  }

  asio::awaitable<void> run() {
    auto self = shared_from_this();
    rt_.enter(&state_);
    start_ = std::chrono::steady_clock::now();
    auto deadline = start_ + req_.timeout;
    asio::steady_timer deadline_timer(rt_.io());
    deadline_timer.expires_at(deadline);
    deadline_timer.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      auto s = weak.lock();
      if (ec || !s || s->finished_io_) return;
      s->timed_out_ = true;
      s->state_.cancel();
    });
    ExecResult r = co_await execute(deadline);
    deadline_timer.cancel();
    finish(std::move(r));
    rt_.leave(&state_);
  }

 private:
  std::string where() const {
    return "exec in pod " + req_.ns + "/" + req_.pod + (req_.container.empty() ? "" : " container " + req_.container);
  }

  std::string target() const {
    std::vector<std::pair<std::string, std::string>> q;
    for (const auto& arg : req_.command) q.emplace_back("command", arg);
    if (!req_.container.empty()) q.emplace_back("container", req_.container);
    q.emplace_back("stdin", req_.stdin ? "true" : "false");
    q.emplace_back("stdout", "true");
    q.emplace_back("stderr", "true");
    return resources::kPods.subresource_path(req_.ns, req_.pod, "exec") + query_string(q);
  }

  Error interrupted(const std::string& what) const {
    if (timed_out_) {
      return Error(Errc::kTimeout, where() + ": did not finish within " +
                                       std::to_string(req_.timeout.count()) + " ms (stream closed)");
    }
    if (cancelled_ || state_.cancelled) return Error(Errc::kCancelled, where() + ": cancelled");
    return Error(Errc::kTransport, where() + ": " + what);
  }

  void take_output(ExecChannel ch, std::string_view data, ExecResult& r) {
    bool is_out = ch == ExecChannel::kStdout;
    std::string& sink = is_out ? r.out : r.err;
    (is_out ? r.out_bytes : r.err_bytes) += data.size();
    if (sink.size() < req_.output_limit) sink.append(data.substr(0, req_.output_limit - sink.size()));
    const auto& fn = is_out ? obs_.on_stdout : obs_.on_stderr;
    if (fn) fn(data);
  }

  template <class Stream>
  asio::awaitable<ExecResult> converse(Stream stream, const AuthMaterial& auth, std::chrono::steady_clock::time_point deadline) {
    ExecResult r;
    websocket::stream<Stream> ws(std::move(stream));
    state_.closer = [&ws] {
      boost::system::error_code ec;
      beast::get_lowest_layer(ws).socket().close(ec);
    };
    struct ClearCloser {
      detail::CallState& s;
      ~ClearCloser() { s.closer = nullptr; }
    } clear{state_};
    detail::configure_websocket(ws, rt_, auth, std::string(kExecProtocolV5) + ", " + std::string(kExecProtocolV4), deadline);
    websocket::response_type res;
    std::string tgt = rt_.endpoint().base_path + target();
    auto [hec] = co_await ws.async_handshake(res, rt_.endpoint().host_header, tgt, use_tuple);
    if (hec) {
      if (state_.cancelled) {
        r.status = interrupted("");
      } else if (res.result_int() != 0 && res.result_int() != 101) {
        r.status = error_from_response(static_cast<int>(res.result_int()), res.body(),
                                       res[http::field::retry_after], where());
      } else {
        upgrade_lost_ = res.result_int() == 0;  // no answer at all: a stale keep-alive connection
        r.status = detail::transport_error(rt_.endpoint(), where() + ": WebSocket upgrade with", hec);
      }
      co_return r;
    }
    protocol_ = std::string(res[http::field::sec_websocket_protocol]);
    r.protocol = protocol_;
    if (protocol_ != kExecProtocolV5 && protocol_ != kExecProtocolV4) {
      r.status = Error(Errc::kTransport, where() + ": server chose unsupported exec protocol \"" + protocol_ +
                                             "\" (kvbackup speaks v5.channel.k8s.io and v4.channel.k8s.io)");
      co_return r;
    }
    ws.binary(true);
    if (close_stdin_requested_ && protocol_ == kExecProtocolV5) {
      outbox_.push_back(encode_exec_frame(ExecChannel::kClose, std::string(1, '\0')));
    }
    // Writer: stdin frames queued by write_stdin()/close_stdin().
    bool reading_done = false;
    asio::co_spawn(
        rt_.io(),
        [this, &ws, &reading_done]() -> asio::awaitable<void> {
          while (!reading_done) {
            while (!outbox_.empty() && !reading_done) {
              std::string frame = std::move(outbox_.front());
              outbox_.pop_front();
              auto [wec, wn] = co_await ws.async_write(asio::buffer(frame), use_tuple);
              if (wec) {
                outbox_.clear();
                break;
              }
            }
            if (reading_done) break;
            co_await wake_.wait();
          }
          writer_done_.notify();
        },
        asio::detached);

    std::optional<Result<int>> exit;
    beast::flat_buffer buf;
    boost::system::error_code rec;
    for (;;) {
      auto [ec, n] = co_await ws.async_read(buf, use_tuple);
      if (ec) {
        rec = ec;
        break;
      }
      std::string msg = beast::buffers_to_string(buf.data());
      buf.consume(buf.size());
      auto frame = decode_exec_frame(msg);
      if (!frame) continue;
      switch (frame->channel) {
        case ExecChannel::kStdout:
        case ExecChannel::kStderr:
          take_output(frame->channel, frame->payload, r);
          break;
        case ExecChannel::kError:
          if (!frame->payload.empty()) exit = exit_code_from_status(frame->payload);
          break;
        default:
          break;
      }
    }
    reading_done = true;
    wake_.notify();
    co_await writer_done_.wait();
    boost::system::error_code ignored;
    beast::get_lowest_layer(ws).socket().close(ignored);
    if (exit) {
      if (*exit) {
        r.exit_code = **exit;
        r.status = ok();
      } else {
        r.status = exit->error().with_context(where());
      }
    } else if (rec == websocket::error::closed || rec == asio::error::eof) {
      r.status = state_.cancelled ? interrupted("")
                                  : Error(Errc::kTransport, where() + ": stream closed before the exit status arrived");
    } else {
      r.status = interrupted("stream lost before the exit status arrived (" + rec.message() + ")");
    }
    co_return r;
  }

  asio::awaitable<ExecResult> execute(std::chrono::steady_clock::time_point deadline) {
    ExecResult r;
    if (!req_.critical) co_await rt_.sleep(rt_.limiter().reserve(), state_);
    if (state_.cancelled) {
      r.status = interrupted("");
      co_return r;
    }
    auto material = co_await rt_.auth();
    if (!material) {
      r.status = material.error();
      co_return r;
    }
    // An idle keep-alive connection first: inside a freeze window (the thaw)
    // a TCP and TLS handshake saved is latency the guest does not pay. If the
    // server had already closed it, the upgrade got no answer at all and
    // never reached it: then, and only then, a new connection is made.
    if (auto idle = rt_.reuse_idle()) {
      upgrade_lost_ = false;
      ExecResult reused = co_await converse_on(std::move(idle), *material, deadline);
      if (!upgrade_lost_ || state_.cancelled) co_return reused;
    }
    auto conn = co_await rt_.connect(deadline, state_);
    if (!conn) {
      r.status = state_.cancelled ? interrupted("") : conn.error().with_context(where());
      co_return r;
    }
    co_return co_await converse_on(std::move(*conn), *material, deadline);
  }

  asio::awaitable<ExecResult> converse_on(std::unique_ptr<detail::Connection> conn, const AuthMaterial& auth,
                                          std::chrono::steady_clock::time_point deadline) {
    auto stream = std::move(conn->stream);
    if (auto* tls = std::get_if<detail::TlsStream>(&stream)) {
      co_return co_await converse(std::move(*tls), auth, deadline);
    }
    co_return co_await converse(std::move(std::get<detail::TcpStream>(stream)), auth, deadline);
  }

  void finish(ExecResult r) {
    finished_io_ = true;
    r.duration = std::chrono::steady_clock::now() - start_;
    {
      std::lock_guard lock(mu_);
      result_ = std::move(r);
      finished_ = true;
    }
    cv_.notify_all();
  }

  std::weak_ptr<detail::Runtime> weak_rt_;
  detail::Runtime& rt_;  // valid while run() runs: the runtime waits for it to end
  ExecRequest req_;
  ExecObserver obs_;
  // io thread only
  detail::CallState state_;
  detail::Signal wake_;
  detail::Signal writer_done_;
  std::deque<std::string> outbox_;
  std::string protocol_;
  bool close_stdin_requested_ = false;
  bool upgrade_lost_ = false;
  bool cancelled_ = false;
  bool timed_out_ = false;
  bool finished_io_ = false;
  std::chrono::steady_clock::time_point start_;
  // shared
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool finished_ = false;
  ExecResult result_;
};

}  // namespace

std::shared_ptr<ExecSession> start_exec(const std::shared_ptr<Client>& client, ExecRequest request,
                                        ExecObserver observer) {
  auto session = std::make_shared<ExecSessionImpl>(client, std::move(request), std::move(observer));
  asio::co_spawn(client->runtime().io(), session->run(), asio::detached);
  return session;
}

ExecResult exec(const std::shared_ptr<Client>& client, ExecRequest request, std::stop_token stop) {
  auto session = start_exec(client, std::move(request));
  std::stop_callback on_stop(stop, [session] { session->cancel(); });
  return session->wait();
}

}  // namespace kvb::kube
