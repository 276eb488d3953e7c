#include "testcluster/net/fd_stream.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <deque>
#include <unistd.h>

namespace kvb::testcluster {
namespace asio = boost::asio;
using local = asio::local::stream_protocol;

namespace {

class FdStreamImpl : public FdStream, public std::enable_shared_from_this<FdStreamImpl> {
 public:
  FdStreamImpl(asio::io_context& io, FdStreamHandlers h) : sock_(io), h_(std::move(h)) {}

  bool assign(int fd) {
    boost::system::error_code ec;
    sock_.assign(local(), fd, ec);
    if (ec) ::close(fd);
    return !ec;
  }

  void start() { read_next(); }

  void write(std::string data) override {
    if (closed_ || data.empty()) return;
    queued_ += data.size();
    out_.push_back(std::move(data));
    if (out_.size() == 1) write_next();
  }
  size_t queued() const override { return queued_; }
  void pause(bool paused) override {
    paused_ = paused;
    if (!paused_ && !reading_ && !closed_) read_next();
  }
  void close() override { end(); }
  bool open() const override { return !closed_; }

 private:
  void read_next() {
    if (closed_ || paused_ || reading_) return;
    reading_ = true;
    sock_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](boost::system::error_code ec, size_t n) {
      self->reading_ = false;
      if (self->closed_) return;
      if (ec) return self->end();
      if (self->h_.on_data) self->h_.on_data(std::string(self->buf_.data(), n));
      self->read_next();
    });
  }

  void write_next() {
    asio::async_write(sock_, asio::buffer(out_.front()), [self = shared_from_this()](boost::system::error_code ec, size_t) {
      if (self->closed_) return;
      self->queued_ -= self->out_.front().size();
      self->out_.pop_front();
      if (ec) return self->end();
      if (!self->out_.empty()) self->write_next();
    });
  }

  void end() {
    if (closed_) return;
    closed_ = true;
    out_.clear();
    queued_ = 0;
    boost::system::error_code ec;
    sock_.shutdown(local::socket::shutdown_both, ec);
    sock_.close(ec);
    auto fn = std::move(h_.on_close);
    h_ = {};
    if (fn) fn();
  }

  local::socket sock_;
  FdStreamHandlers h_;
  std::array<char, 256 * 1024> buf_{};
  std::deque<std::string> out_;
  size_t queued_ = 0;
  bool paused_ = false, reading_ = false, closed_ = false;
};

}  // namespace

std::shared_ptr<FdStream> FdStream::attach(EventLoop& loop, int fd, FdStreamHandlers handlers) {
  auto& io = *static_cast<asio::io_context*>(loop.native());
  auto s = std::make_shared<FdStreamImpl>(io, std::move(handlers));
  if (!s->assign(fd)) return nullptr;
  s->start();
  return s;
}

}  // namespace kvb::testcluster
