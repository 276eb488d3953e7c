#include "common/printable.h"

#include <cstdint>
#include <cstdio>

namespace kvb {
namespace {

// The length of the UTF-8 sequence at s[i] and its code point; 0 when invalid.
size_t decode_utf8(std::string_view s, size_t i, uint32_t& cp) {
  auto b = static_cast<unsigned char>(s[i]);
  size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  cp = n == 1 ? b : n == 2 ? (b & 0x1f) : n == 3 ? (b & 0x0f) : (b & 0x07);
  for (size_t k = 1; k < n; ++k) {
    auto c = static_cast<unsigned char>(s[i + k]);
    if ((c >> 6) != 2) return 0;
    cp = (cp << 6) | (c & 0x3f);
  }
  static const uint32_t min_for_length[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min_for_length[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;  // overlong, out of range, surrogate
  return n;
}

bool needs_escape(uint32_t cp) {
  return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
         cp == 0x200e || cp == 0x200f || cp == 0x061c;
}

}  // namespace

namespace {
std::string escape(std::string_view s, bool text) {
  std::string out;
  out.reserve(s.size());
  char buf[16];
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t n = decode_utf8(s, i, cp);
    if (n == 0) {
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(s[i]));
      out += buf;
      ++i;
      continue;
    }
    if (text && (cp == '\n' || cp == '\t' || cp == '\\')) {
      out += static_cast<char>(cp);
    } else if (cp == '\\') {
      out += "\\\\";
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (needs_escape(cp)) {
      std::snprintf(buf, sizeof buf, cp < 0x80 ? "\\x%02x" : "\\u%04x", cp);
      out += buf;
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
  return out;
}
}  // namespace

std::string printable(std::string_view s) { return escape(s, false); }
std::string printable_text(std::string_view s) { return escape(s, true); }

Status check_name(std::string_view s, std::string_view what, size_t max_bytes) {
  if (s.empty()) return Error(Errc::kInvalidArgument, std::string(what) + " must not be empty");
  if (s.size() > max_bytes) {
    return Error(Errc::kInvalidArgument, std::string(what) + " \"" + std::string(s.substr(0, 60)) + "...\" is longer than " +
                                             std::to_string(max_bytes) + " bytes");
  }
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t n = decode_utf8(s, i, cp);
    if (n == 0 || needs_escape(cp)) {
      return Error(Errc::kInvalidArgument, std::string(what) + " \"" + std::string(s) + "\" holds " +
                                               (n == 0 ? "bytes that are not UTF-8" : "a control character") +
                                               "; names must be printable text");
    }
    i += n;
  }
  return ok();
}

}  // namespace kvb
