// FdStream: a connected stream socket (one end of a socketpair) read and
// written on the EventLoop thread, without exposing Asio to the code above.
// The test cluster's port-forward uses it for the pod side of a tunnel.
//
// Invariants: every handler runs on the loop thread; writes go out in order
// (send with MSG_NOSIGNAL: a vanished peer is a close, never SIGPIPE);
// on_close runs exactly once, when the peer closes, an I/O error happens or
// close() is called; reading stops while paused (back-pressure).
#pragma once

#include "testcluster/net/event_loop.h"

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace kvb::testcluster {

struct FdStreamHandlers {
  std::function<void(std::string)> on_data;
  std::function<void()> on_close;
};

class FdStream {
 public:
  virtual ~FdStream() = default;
  // Takes ownership of `fd`; reading starts at once. Call on the loop thread.
  static std::shared_ptr<FdStream> attach(EventLoop& loop, int fd, FdStreamHandlers handlers);

  virtual void write(std::string data) = 0;
  virtual size_t queued() const = 0;        // bytes written but not yet sent
  virtual void pause(bool paused) = 0;      // stop / resume reading
  virtual void close() = 0;
  virtual bool open() const = 0;
};

}  // namespace kvb::testcluster
