// SPDY/3.1 framing, as much as the server side of `kubectl port-forward`
// needs (the protocol of moby/spdystream, which client-go's port-forward
// speaks inside its WebSocket tunnel `SPDY/3.1+portforward.k8s.io`; SPDY
// Protocol draft 3.1, sections 2.2-2.6):
//
// - FrameReader cuts a byte stream (the concatenated WebSocket messages)
//   into frames: control frames (version 3, type, flags, 24-bit length) and
//   data frames (31-bit stream id, flags, 24-bit length);
// - HeaderInflater / HeaderDeflater are the two zlib streams of a connection
//   (one per direction, primed with the SPDY/3 header dictionary, each block
//   ended by a sync flush) and the name/value block inside them (32-bit
//   counts and lengths);
// - the functions at the end write the frames a server sends.
//
// Invariants: a connection uses one inflater for every header block it
// receives and one deflater for every block it sends, in order (the zlib
// state carries over between blocks); lengths above 2^24-1 are never
// written (data longer than that is the caller's to split).
#pragma once

#include "common/error.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvb::testcluster::spdy {

enum ControlType : uint16_t {
  kSynStream = 1,
  kSynReply = 2,
  kRstStream = 3,
  kSettings = 4,
  kPing = 6,
  kGoAway = 7,
  kHeaders = 8,
  kWindowUpdate = 9,
};
constexpr uint8_t kFlagFin = 0x01;
constexpr uint32_t kRstProtocolError = 1;
constexpr uint32_t kRstRefusedStream = 3;
constexpr size_t kMaxLength = (size_t{1} << 24) - 1;

// The SPDY/3 zlib dictionary (1423 bytes; its Adler-32 is 0xe3c6a7c2).
const std::string& header_dictionary();

struct Frame {
  bool control = false;
  uint16_t type = 0;       // control frames
  uint32_t stream_id = 0;  // data frames
  uint8_t flags = 0;
  std::string payload;     // what follows the 8-byte header
};

class FrameReader {
 public:
  void feed(std::string_view bytes) { buffer_.append(bytes); }
  // The next complete frame; nullopt until one is; an error for a control
  // frame of another version (the connection is then unusable).
  Result<std::optional<Frame>> next();

 private:
  std::string buffer_;
  size_t pos_ = 0;
};

using Headers = std::vector<std::pair<std::string, std::string>>;

class HeaderInflater {
 public:
  HeaderInflater();
  ~HeaderInflater();
  HeaderInflater(const HeaderInflater&) = delete;
  HeaderInflater& operator=(const HeaderInflater&) = delete;
  // One compressed name/value block (the tail of SYN_STREAM, SYN_REPLY, HEADERS).
  Result<Headers> decode(std::string_view block);

 private:
  struct Z;
  std::unique_ptr<Z> z_;
};

class HeaderDeflater {
 public:
  HeaderDeflater();
  ~HeaderDeflater();
  HeaderDeflater(const HeaderDeflater&) = delete;
  HeaderDeflater& operator=(const HeaderDeflater&) = delete;
  std::string encode(const Headers& headers);

 private:
  struct Z;
  std::unique_ptr<Z> z_;
};

// SYN_STREAM's fixed part: stream id, associated stream, priority; the header block follows at offset 10.
struct SynStream {
  uint32_t stream_id = 0;
  uint32_t associated = 0;
  uint8_t priority = 0;
  std::string_view header_block;
};
Result<SynStream> parse_syn_stream(const Frame& f);
// The stream id of RST_STREAM, WINDOW_UPDATE, SYN_REPLY and HEADERS frames (0 if too short).
uint32_t stream_of(const Frame& f);

std::string control_frame(uint16_t type, uint8_t flags, std::string_view payload);
std::string data_frame(uint32_t stream_id, std::string_view data, bool fin);
std::string syn_reply(uint32_t stream_id, std::string_view header_block, bool fin);
std::string rst_stream(uint32_t stream_id, uint32_t status);
std::string go_away(uint32_t last_good_stream, uint32_t status);
// A SYN_STREAM (what a client sends; for tests).
std::string syn_stream(uint32_t stream_id, std::string_view header_block, bool fin);

}  // namespace kvb::testcluster::spdy
