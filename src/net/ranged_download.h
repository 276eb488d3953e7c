// RangedDownload: one HTTP(S) object downloaded as parallel Range requests and
// passed on in order: written into a file descriptor, or handed range by range
// to a sink (a repository put's source: no temporary file of the image anywhere).
//
// How it behaves:
// - HEAD gives the size; ranges of `range_size` bytes are fetched by
//   `connections` threads, at most `connections + 1` ranges held in memory.
// - A range that fails (connection reset, truncated body, 5xx, the server
//   restarting) is fetched again, with backoff, up to `retry_budget` of wall
//   time per range: a transfer resumes at the range it lost, never from byte 0.
// - 401/403/404 and a size that changes (Content-Range) are errors at once, and
//   so is a connection its dialer was refused (401/403 from the API server).
// - The bytes written are hashed (SHA-256) in order: the digest is that of the
//   object as read, which callers compare with what they were promised.
//
// Threads: download() blocks its caller and runs its own worker threads;
// `cancelled` and `progress` are called from the caller's thread.
#pragma once

#include "common/error.h"
#include "net/http_transport.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kvb::net {

struct DownloadOptions {
  unsigned connections = 4;
  uint64_t range_size = uint64_t{16} << 20;
  std::chrono::milliseconds retry_budget{60'000};  // per range, from its first failure
  HeaderList headers;                              // e.g. the token header
  TransportOptions transport;
  std::function<bool()> cancelled;                               // polled; true stops the download
  std::function<void(uint64_t done, uint64_t total)> progress;  // after each range written
  // Only these byte ranges of the object (offset, length; sorted, disjoint,
  // inside it; maybe none), written back to back in order: a changed-block
  // delta. Unset: the whole object. The object's size (HEAD) must be
  // `expect_size` when that is not 0.
  std::optional<std::vector<std::pair<uint64_t, uint64_t>>> only;
  uint64_t expect_size = 0;
  // With `only`: the digest is the whole object's, the bytes outside the
  // ranges taken as zeros (ranges the storage reported unallocated).
  bool hash_gaps_as_zeros = false;
};

struct DownloadResult {
  uint64_t bytes = 0;           // written (with `only`: the ranges' bytes)
  uint64_t object_size = 0;     // the object's size (HEAD)
  std::string sha256;        // hex digest of every byte written (hash_gaps_as_zeros: of the object)
  unsigned retried_ranges = 0;  // ranges fetched more than once
};

// Downloads `url` into `fd` (written with send(MSG_NOSIGNAL) when fd is a
// socket, write() otherwise). The url's query is kept on every request.
Result<DownloadResult> download(const std::string& url, int fd, const DownloadOptions& options);

// Downloads `url` and hands each range's bytes, in order, to `sink` (on the
// caller's thread, after they were hashed): no copy through a descriptor. A
// sink that fails stops the download with its error.
using Sink = std::function<Status(std::string&& bytes)>;
Result<DownloadResult> download_into(const std::string& url, const Sink& sink, const DownloadOptions& options);

}  // namespace kvb::net
