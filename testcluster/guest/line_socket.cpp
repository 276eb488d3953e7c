#include "testcluster/guest/line_socket.h"

#include <cerrno>
#include <cstring>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace kvb::testcluster::guest {

LineSocket::~LineSocket() { close(); }

LineSocket::LineSocket(LineSocket&& o) noexcept
    : fd_(o.fd_), watch_fd_(o.watch_fd_), name_(std::move(o.name_)), buffer_(std::move(o.buffer_)) {
  o.fd_ = -1;
}

LineSocket& LineSocket::operator=(LineSocket&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = o.fd_;
    watch_fd_ = o.watch_fd_;
    name_ = std::move(o.name_);
    buffer_ = std::move(o.buffer_);
    o.fd_ = -1;
  }
  return *this;
}

void LineSocket::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<LineSocket> LineSocket::connect(const std::filesystem::path& path, int watch_fd) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string p = path.string();
  if (p.size() >= sizeof(addr.sun_path)) {
    return Error(Errc::kInvalidArgument, "socket path " + p + " is longer than " +
                                             std::to_string(sizeof(addr.sun_path) - 1) + " characters");
  }
  std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error(Errc::kIo, "socket: " + std::string(std::strerror(errno)));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int e = errno;
    ::close(fd);
    return Error(Errc::kTransport, "connect " + p + ": " + std::strerror(e));
  }
  LineSocket s;
  s.fd_ = fd;
  s.watch_fd_ = watch_fd;
  s.name_ = path.filename().string();
  return s;
}

namespace {

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1'000'000));
}

}  // namespace

Status LineSocket::write_all(std::string_view data, Clock::time_point deadline) {
  if (fd_ < 0) return Error(Errc::kTransport, name_ + ": not connected");
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      return Error(Errc::kTransport, name_ + ": write: " + std::strerror(errno));
    }
    pollfd p{fd_, POLLOUT, 0};
    int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r == 0) return Error(Errc::kTimeout, name_ + ": write timed out");
    if (r < 0 && errno != EINTR) return Error(Errc::kIo, name_ + ": poll: " + std::strerror(errno));
  }
  return ok();
}

Result<std::string> LineSocket::read_line(Clock::time_point deadline) {
  if (fd_ < 0) return Error(Errc::kTransport, name_ + ": not connected");
  for (;;) {
    size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    if (buffer_.size() > (16u << 20)) return Error(Errc::kParse, name_ + ": a line longer than 16 MiB");
    pollfd p[2] = {{fd_, POLLIN, 0}, {watch_fd_, POLLIN, 0}};
    int r = ::poll(p, watch_fd_ >= 0 ? 2 : 1, remaining_ms(deadline));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Error(Errc::kIo, name_ + ": poll: " + std::strerror(errno));
    }
    if (r == 0) return Error(Errc::kTimeout, name_ + ": no answer before the deadline");
    if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)) && watch_fd_ >= 0 && (p[1].revents & POLLIN)) {
      return Error(Errc::kTransport, name_ + ": QEMU exited");
    }
    char buf[8192];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
    if (n == 0) return Error(Errc::kTransport, name_ + ": connection closed by QEMU");
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return Error(Errc::kTransport, name_ + ": read: " + std::strerror(errno));
    }
    for (ssize_t i = 0; i < n; ++i) {
      if (static_cast<unsigned char>(buf[i]) != 0xFF) buffer_.push_back(buf[i]);
    }
  }
}

}  // namespace kvb::testcluster::guest
