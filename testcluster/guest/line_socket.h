// LineSocket: a blocking Unix stream socket that exchanges newline-delimited
// JSON with a deadline on every read and write (the QEMU guest agent and QMP
// both speak it). Used by AgentClient and QmpClient only.
//
// Invariants: every call returns by its deadline (poll(2) bounds each wait);
// when a watch descriptor is given (QEMU's pidfd) and it becomes readable, the
// read fails at once with "QEMU exited" instead of waiting out the deadline;
// 0xFF bytes (the agent's sync delimiter) are dropped from the stream.
#pragma once

#include "common/error.h"

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>

namespace kvb::testcluster::guest {

using Clock = std::chrono::steady_clock;

class LineSocket {
 public:
  LineSocket() = default;
  ~LineSocket();
  LineSocket(LineSocket&& o) noexcept;
  LineSocket& operator=(LineSocket&& o) noexcept;
  LineSocket(const LineSocket&) = delete;
  LineSocket& operator=(const LineSocket&) = delete;

  // Connects to the listening socket at path. watch_fd (may be -1) is not owned.
  static Result<LineSocket> connect(const std::filesystem::path& path, int watch_fd);

  Status write_all(std::string_view data, Clock::time_point deadline);
  // One line without its '\n' (and without a trailing '\r').
  Result<std::string> read_line(Clock::time_point deadline);
  // Forgets buffered input (after a sync delimiter the old bytes are stale).
  void discard_buffer() { buffer_.clear(); }
  bool is_open() const { return fd_ >= 0; }
  void close();

 private:
  int fd_ = -1;
  int watch_fd_ = -1;
  std::string name_;
  std::string buffer_;
};

}  // namespace kvb::testcluster::guest
