#include "testcluster/spdy.h"

#include <zlib.h>

#include <array>

namespace kvb::testcluster::spdy {

namespace {

void put32(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>(v >> 16));
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}

uint32_t get32(std::string_view s, size_t at) {
  auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(s[at + i])); };
  return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
}

Error protocol_error(std::string what) { return Error(Errc::kParse, "SPDY: " + std::move(what)); }

}  // namespace

const std::string& header_dictionary() {
  // SPDY draft 3, 2.6.10.1: length-prefixed header names and values, then common value fragments.
  static const std::string dict = [] {
    static constexpr std::string_view kWords[] = {
        "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
        "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
        "content-base", "content-encoding", "content-language", "content-length", "content-location", "content-md5",
        "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host", "if-match",
        "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
        "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer", "retry-after",
        "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
        "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie",
        "keep-alive", "origin"};
    std::string d;
    for (auto w : kWords) {
      put32(d, static_cast<uint32_t>(w.size()));
      d.append(w);
    }
    d += "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
         "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
         "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
         "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
         "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
         "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";
    return d;
  }();
  return dict;
}

Result<std::optional<Frame>> FrameReader::next() {
  if (buffer_.size() - pos_ < 8) return std::optional<Frame>();
  std::string_view b(buffer_);
  uint32_t first = get32(b, pos_);
  uint32_t second = get32(b, pos_ + 4);
  size_t length = second & 0xFFFFFF;
  if (buffer_.size() - pos_ < 8 + length) return std::optional<Frame>();
  Frame f;
  f.control = (first & 0x80000000u) != 0;
  f.flags = static_cast<uint8_t>(second >> 24);
  if (f.control) {
    uint16_t version = static_cast<uint16_t>((first >> 16) & 0x7FFF);
    if (version != 3) return protocol_error("control frame of version " + std::to_string(version));
    f.type = static_cast<uint16_t>(first & 0xFFFF);
  } else {
    f.stream_id = first & 0x7FFFFFFF;
  }
  f.payload.assign(b.substr(pos_ + 8, length));
  pos_ += 8 + length;
  if (pos_ > 65536 && pos_ * 2 > buffer_.size()) {
    buffer_.erase(0, pos_);
    pos_ = 0;
  }
  return std::optional<Frame>(std::move(f));
}

struct HeaderInflater::Z {
  z_stream s{};
};

HeaderInflater::HeaderInflater() : z_(std::make_unique<Z>()) { inflateInit(&z_->s); }
HeaderInflater::~HeaderInflater() { inflateEnd(&z_->s); }

Result<Headers> HeaderInflater::decode(std::string_view block) {
  std::string out;
  z_stream& s = z_->s;
  s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(block.data()));
  s.avail_in = static_cast<uInt>(block.size());
  std::array<char, 4096> buf;
  while (true) {
    s.next_out = reinterpret_cast<Bytef*>(buf.data());
    s.avail_out = static_cast<uInt>(buf.size());
    int rc = inflate(&s, Z_SYNC_FLUSH);
    if (rc == Z_NEED_DICT) {
      const std::string& d = header_dictionary();
      if (inflateSetDictionary(&s, reinterpret_cast<const Bytef*>(d.data()), static_cast<uInt>(d.size())) != Z_OK) {
        return protocol_error("the header block wants another dictionary");
      }
      rc = Z_OK;
    }
    out.append(buf.data(), buf.size() - s.avail_out);
    if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END) return protocol_error("bad header block (zlib " + std::to_string(rc) + ")");
    if (s.avail_in == 0 && s.avail_out != 0) break;
    if (rc == Z_BUF_ERROR && s.avail_in == 0) break;
  }
  // The name/value block: count, then (length, name, length, value) each; several values of one name are NUL-separated.
  Headers h;
  if (out.size() < 4) return protocol_error("short header block");
  uint32_t n = get32(out, 0);
  size_t at = 4;
  for (uint32_t i = 0; i < n; ++i) {
    std::string parts[2];
    for (auto& p : parts) {
      if (out.size() - at < 4) return protocol_error("truncated header block");
      uint32_t len = get32(out, at);
      at += 4;
      if (out.size() - at < len) return protocol_error("truncated header block");
      p = out.substr(at, len);
      at += len;
    }
    h.emplace_back(std::move(parts[0]), std::move(parts[1]));
  }
  return h;
}

struct HeaderDeflater::Z {
  z_stream s{};
};

HeaderDeflater::HeaderDeflater() : z_(std::make_unique<Z>()) {
  deflateInit(&z_->s, Z_DEFAULT_COMPRESSION);
  const std::string& d = header_dictionary();
  deflateSetDictionary(&z_->s, reinterpret_cast<const Bytef*>(d.data()), static_cast<uInt>(d.size()));
}
HeaderDeflater::~HeaderDeflater() { deflateEnd(&z_->s); }

std::string HeaderDeflater::encode(const Headers& headers) {
  std::string plain;
  put32(plain, static_cast<uint32_t>(headers.size()));
  for (const auto& [name, value] : headers) {
    put32(plain, static_cast<uint32_t>(name.size()));
    plain += name;
    put32(plain, static_cast<uint32_t>(value.size()));
    plain += value;
  }
  z_stream& s = z_->s;
  s.next_in = reinterpret_cast<Bytef*>(plain.data());
  s.avail_in = static_cast<uInt>(plain.size());
  std::string out;
  std::array<char, 4096> buf;
  do {
    s.next_out = reinterpret_cast<Bytef*>(buf.data());
    s.avail_out = static_cast<uInt>(buf.size());
    deflate(&s, Z_SYNC_FLUSH);
    out.append(buf.data(), buf.size() - s.avail_out);
  } while (s.avail_out == 0);
  return out;
}

Result<SynStream> parse_syn_stream(const Frame& f) {
  if (!f.control || f.type != kSynStream || f.payload.size() < 10) return protocol_error("malformed SYN_STREAM");
  SynStream s;
  s.stream_id = get32(f.payload, 0) & 0x7FFFFFFF;
  s.associated = get32(f.payload, 4) & 0x7FFFFFFF;
  s.priority = static_cast<uint8_t>(static_cast<unsigned char>(f.payload[8]) >> 5);
  s.header_block = std::string_view(f.payload).substr(10);
  if (s.stream_id == 0) return protocol_error("stream id zero");
  return s;
}

uint32_t stream_of(const Frame& f) { return f.payload.size() < 4 ? 0 : get32(f.payload, 0) & 0x7FFFFFFF; }

std::string control_frame(uint16_t type, uint8_t flags, std::string_view payload) {
  std::string out;
  put32(out, 0x80000000u | (3u << 16) | type);
  put32(out, static_cast<uint32_t>(flags) << 24 | static_cast<uint32_t>(payload.size()));
  out.append(payload);
  return out;
}

std::string data_frame(uint32_t stream_id, std::string_view data, bool fin) {
  std::string out;
  put32(out, stream_id & 0x7FFFFFFF);
  put32(out, static_cast<uint32_t>(fin ? kFlagFin : 0) << 24 | static_cast<uint32_t>(data.size()));
  out.append(data);
  return out;
}

std::string syn_reply(uint32_t stream_id, std::string_view header_block, bool fin) {
  std::string p;
  put32(p, stream_id & 0x7FFFFFFF);
  p.append(header_block);
  return control_frame(kSynReply, fin ? kFlagFin : 0, p);
}

std::string syn_stream(uint32_t stream_id, std::string_view header_block, bool fin) {
  std::string p;
  put32(p, stream_id & 0x7FFFFFFF);
  put32(p, 0);
  p.push_back(0);
  p.push_back(0);
  p.append(header_block);
  return control_frame(kSynStream, fin ? kFlagFin : 0, p);
}

std::string rst_stream(uint32_t stream_id, uint32_t status) {
  std::string p;
  put32(p, stream_id & 0x7FFFFFFF);
  put32(p, status);
  return control_frame(kRstStream, 0, p);
}

std::string go_away(uint32_t last_good_stream, uint32_t status) {
  std::string p;
  put32(p, last_good_stream & 0x7FFFFFFF);
  put32(p, status);
  return control_frame(kGoAway, 0, p);
}

}  // namespace kvb::testcluster::spdy
