#include "kube/port_forward.h"

#include "kube/api_status.h"
#include "kube/detail/runtime.h"
#include "kube/detail/signal.h"
#include "kube/detail/websocket_setup.h"
#include "kube/exec_protocol.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <array>
#include <cstring>
#include <future>
#include <mutex>
#include <sys/socket.h>
#include <unistd.h>

namespace kvb::kube {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using local = asio::local::stream_protocol;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {

// What the caller's handle and the io-thread session share. The handle may
// outlive the Client (and its io_context): it holds no Asio object.
struct Shared {
  std::mutex mu;
  int user_fd = -1;
  std::string error;
  bool ended = false;
  ~Shared() {
    if (user_fd >= 0) ::close(user_fd);
  }
};

class Handle : public PortForward {
 public:
  explicit Handle(std::shared_ptr<Shared> s) : s_(std::move(s)) {}
  int take_fd() override {
    std::lock_guard lock(s_->mu);
    int fd = s_->user_fd;
    s_->user_fd = -1;
    return fd;
  }
  std::string error() const override {
    std::lock_guard lock(s_->mu);
    return s_->error;
  }
  bool ended() const override {
    std::lock_guard lock(s_->mu);
    return s_->ended;
  }

 private:
  std::shared_ptr<Shared> s_;
};

// The stream itself, on the client's io thread; ends before the client does.
class PortForwardImpl : public std::enable_shared_from_this<PortForwardImpl> {
 public:
  PortForwardImpl(const std::shared_ptr<Client>& client, PortForwardRequest req, std::shared_ptr<Shared> shared)
      : rt_(client->runtime()), req_(std::move(req)), shared_(std::move(shared)), local_(rt_.io()),
        writer_done_(rt_.io().get_executor()) {}

  std::future<Status> opened() { return opened_.get_future(); }

  asio::awaitable<void> run() {
    auto self = shared_from_this();
    rt_.enter(&state_);
    co_await execute();
    {
      std::lock_guard lock(shared_->mu);
      shared_->ended = true;
    }
    if (!open_reported_) report_open(Error(Errc::kTransport, where() + ": the stream ended before it was open"));
    rt_.leave(&state_);
  }

  void cancel_on_io() {
    asio::post(rt_.io(), [self = shared_from_this()] { self->state_.cancel(); });
  }

 private:
  std::string where() const {
    return "port-forward to pod " + req_.ns + "/" + req_.pod + " port " + std::to_string(req_.port);
  }

  void report_open(Status s) {
    if (open_reported_) return;
    if (!s && timed_out_) {
      s = Error(Errc::kTimeout, where() + ": not open within " + std::to_string(req_.open_timeout.count()) + " ms");
    }
    open_reported_ = true;
    opened_.set_value(std::move(s));
  }

  asio::awaitable<void> execute() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
      report_open(Error(Errc::kIo, where() + ": socketpair: " + std::strerror(errno)));
      co_return;
    }
    boost::system::error_code aec;
    local_.assign(local(), fds[0], aec);
    {
      std::lock_guard lock(shared_->mu);
      shared_->user_fd = fds[1];
    }
    if (aec) {
      ::close(fds[0]);
      report_open(Error(Errc::kIo, where() + ": " + aec.message()));
      co_return;
    }
    auto material = co_await rt_.auth();
    if (!material) {
      report_open(material.error());
      co_return;
    }
    auto deadline = std::chrono::steady_clock::now() + req_.open_timeout;
    asio::steady_timer open_timer(rt_.io());
    open_timer.expires_at(deadline);
    open_timer.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      auto s = weak.lock();
      if (ec || !s || s->open_reported_) return;
      s->timed_out_ = true;
      s->state_.cancel();
    });
    auto conn = co_await rt_.connect(deadline, state_);
    if (!conn) {
      report_open(conn.error().with_context(where()));
      co_return;
    }
    auto stream = std::move((*conn)->stream);
    if (auto* tls = std::get_if<detail::TlsStream>(&stream)) {
      co_await converse(std::move(*tls), *material, deadline);
    } else {
      co_await converse(std::move(std::get<detail::TcpStream>(stream)), *material, deadline);
    }
  }

  template <class Stream>
  asio::awaitable<void> converse(Stream stream, const AuthMaterial& auth, std::chrono::steady_clock::time_point deadline) {
    websocket::stream<Stream> ws(std::move(stream));
    state_.closer = [this, &ws] {
      boost::system::error_code ec;
      beast::get_lowest_layer(ws).socket().close(ec);
      local_.close(ec);
    };
    struct ClearCloser {
      detail::CallState& s;
      ~ClearCloser() { s.closer = nullptr; }
    } clear{state_};
    detail::configure_websocket(ws, rt_, auth, std::string(kPortForwardProtocolV4), deadline);
    websocket::response_type res;
    std::string tgt = rt_.endpoint().base_path +
                      resources::kPods.subresource_path(req_.ns, req_.pod, "portforward") +
                      query_string({{"ports", std::to_string(req_.port)}});
    auto [hec] = co_await ws.async_handshake(res, rt_.endpoint().host_header, tgt, use_tuple);
    if (hec) {
      if (state_.cancelled) {
        report_open(Error(Errc::kCancelled, where() + ": cancelled"));
      } else if (res.result_int() != 0 && res.result_int() != 101) {
        report_open(error_from_response(static_cast<int>(res.result_int()), res.body(), res[http::field::retry_after], where()));
      } else {
        report_open(detail::transport_error(rt_.endpoint(), where() + ": WebSocket upgrade with", hec));
      }
      co_return;
    }
    std::string protocol(res[http::field::sec_websocket_protocol]);
    if (protocol != kPortForwardProtocolV4) {
      report_open(Error(Errc::kTransport, where() + ": server chose unsupported protocol \"" + protocol +
                                              "\" (kvbackup speaks v4.channel.k8s.io)"));
      co_return;
    }
    ws.binary(true);
    // Room for whole messages: an empty flat_buffer makes Beast read 512 bytes a step.
    beast::flat_buffer buf;
    buf.reserve(512 << 10);
    // Both channels announce the port first (data, then error).
    for (uint8_t want = 0; want < 2; ++want) {
      auto [ec, n] = co_await ws.async_read(buf, use_tuple);
      if (ec) {
        report_open(Error(Errc::kTransport, where() + ": the stream closed before it was open (" + ec.message() + ")"));
        co_return;
      }
      std::string msg = beast::buffers_to_string(buf.data());
      buf.consume(buf.size());
      auto port = msg.empty() ? std::nullopt : decode_port_payload(std::string_view(msg).substr(1));
      if (msg.empty() || static_cast<uint8_t>(msg[0]) != want || port != req_.port) {
        report_open(Error(Errc::kParse, where() + ": channel " + std::to_string(want) +
                                            " did not start with the port number (kubelet protocol)"));
        co_return;
      }
    }
    report_open(ok());

    // Writer: the local socket's bytes to the data channel; EOF closes the stream.
    bool reading_done = false;
    asio::co_spawn(
        rt_.io(),
        [this, &ws, &reading_done]() -> asio::awaitable<void> {
          std::array<char, 256 * 1024> chunk;
          chunk[0] = 0;  // the data channel of the only port
          for (;;) {
            auto [ec, n] = co_await local_.async_read_some(asio::buffer(chunk.data() + 1, chunk.size() - 1), use_tuple);
            if (ec || reading_done) break;
            auto [wec, wn] = co_await ws.async_write(asio::buffer(chunk.data(), n + 1), use_tuple);
            if (wec) break;
          }
          if (!reading_done) co_await ws.async_close(websocket::close_code::normal, use_tuple);
          writer_done_.notify();
        },
        asio::detached);
    // Reader: data to the local socket, error text kept.
    for (;;) {
      auto [ec, n] = co_await ws.async_read(buf, use_tuple);
      if (ec) break;
      auto data = buf.data();
      std::string_view msg(static_cast<const char*>(data.data()), data.size());
      if (!msg.empty() && msg[0] == 0 && msg.size() > 1) {
        auto [wec, wn] = co_await asio::async_write(local_, asio::buffer(msg.data() + 1, msg.size() - 1), use_tuple);
        if (wec) {
          buf.consume(buf.size());
          break;
        }
      } else if (!msg.empty() && msg[0] == 1) {
        std::lock_guard lock(shared_->mu);
        shared_->error.append(msg.substr(1));
      }
      buf.consume(buf.size());
    }
    reading_done = true;
    boost::system::error_code ignored;
    local_.shutdown(local::socket::shutdown_both, ignored);
    local_.close(ignored);
    co_await writer_done_.wait();
    beast::get_lowest_layer(ws).socket().close(ignored);
  }

  detail::Runtime& rt_;
  PortForwardRequest req_;
  std::shared_ptr<Shared> shared_;
  local::socket local_;
  detail::CallState state_;
  detail::Signal writer_done_;
  std::promise<Status> opened_;
  bool open_reported_ = false;  // io thread only
  bool timed_out_ = false;      // io thread only
};

}  // namespace

Result<std::shared_ptr<PortForward>> open_port_forward(const std::shared_ptr<Client>& client, PortForwardRequest request) {
  if (request.port == 0) return Error(Errc::kInvalidArgument, "port-forward: the port must be 1-65535");
  auto shared = std::make_shared<Shared>();
  auto pf = std::make_shared<PortForwardImpl>(client, std::move(request), shared);
  auto opened = pf->opened();
  asio::co_spawn(client->runtime().io(), pf->run(), asio::detached);
  Status s = opened.get();
  if (!s) {
    pf->cancel_on_io();
    return s.error();
  }
  return std::shared_ptr<PortForward>(std::make_shared<Handle>(shared));
}

}  // namespace kvb::kube
