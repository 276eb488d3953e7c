#include "common/sanitize.h"

#include "common/secret.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace kvb {

namespace {

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '~' || c == '+' ||
         c == '/' || c == '=' || c == '%';
}

bool iequals_at(std::string_view text, size_t pos, std::string_view word) {
  if (pos + word.size() > text.size()) return false;
  for (size_t i = 0; i < word.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[pos + i])) != std::tolower(static_cast<unsigned char>(word[i]))) return false;
  }
  return true;
}

// Names whose value (after '=', ':' or ': ') is a credential.
constexpr std::array<std::string_view, 14> kSecretKeys = {
    "token", "access_token", "id-token", "id_token", "refresh_token", "password", "passwd", "secret",
    "x-kubevirt-export-token", "x-amz-signature", "x-amz-security-token", "x-amz-credential", "client-key-data",
    "authorization"};

bool key_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; }

}  // namespace

std::string redact_credentials(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    // "Bearer xyz" / "Basic xyz" (an Authorization value anywhere in the text).
    bool at_word = i == 0 || !key_char(text[i - 1]);
    bool scheme = at_word && (iequals_at(text, i, "bearer ") || iequals_at(text, i, "basic "));
    if (scheme) {
      size_t sp = text.find(' ', i);
      size_t j = sp + 1;
      while (j < text.size() && text[j] == ' ') ++j;
      size_t k = j;
      while (k < text.size() && is_token_char(text[k])) ++k;
      if (k > j) {
        out.append(text.substr(i, j - i));
        out.append(Secret::kMask);
        i = k;
        continue;
      }
    }
    // key=value, key: value, "key":"value" for the names above.
    if (at_word) {
      bool matched = false;
      for (auto key : kSecretKeys) {
        if (!iequals_at(text, i, key)) continue;
        size_t j = i + key.size();
        if (j < text.size() && key_char(text[j])) continue;  // a longer word ("tokens")
        size_t v = j;
        if (v < text.size() && text[v] == '"') ++v;
        if (v >= text.size() || (text[v] != '=' && text[v] != ':')) continue;
        ++v;
        while (v < text.size() && (text[v] == ' ' || text[v] == '"')) ++v;
        // An Authorization value keeps its scheme word ("Bearer"), handled above on the next pass.
        if (key == "authorization" && (iequals_at(text, v, "bearer ") || iequals_at(text, v, "basic "))) continue;
        size_t e = v;
        while (e < text.size() && is_token_char(text[e])) ++e;
        if (e == v) continue;
        out.append(text.substr(i, v - i));
        out.append(Secret::kMask);
        i = e;
        matched = true;
        break;
      }
      if (matched) continue;
    }
    // scheme://user:password@host
    if (text.compare(i, 3, "://") == 0) {
      size_t start = i + 3, end = start;
      while (end < text.size() && text[end] != '/' && text[end] != '@' && text[end] != ' ' && text[end] != '"') ++end;
      if (end < text.size() && text[end] == '@' && end > start) {
        out.append("://");
        out.append(Secret::kMask);
        i = end;  // keeps the '@'
        continue;
      }
    }
    out += text[i++];
  }
  return out;
}

std::string redact_url(std::string_view url) { return redact_credentials(url); }

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == 0x1b) {  // ESC: drop the whole sequence
      if (i + 1 < text.size() && text[i + 1] == '[') {  // CSI: parameters, then a final byte 0x40..0x7e
        size_t j = i + 2;
        while (j < text.size() && !(static_cast<unsigned char>(text[j]) >= 0x40 && static_cast<unsigned char>(text[j]) <= 0x7e)) ++j;
        i = std::min(j, text.size() - 1);
      } else if (i + 1 < text.size() && (text[i + 1] == ']' || text[i + 1] == 'P' || text[i + 1] == '_' || text[i + 1] == '^')) {
        size_t j = i + 2;  // OSC/DCS/APC/PM: up to BEL or ESC '\'
        while (j < text.size() && text[j] != '\a' && !(text[j] == 0x1b && j + 1 < text.size() && text[j + 1] == '\\')) ++j;
        if (j < text.size() && text[j] == 0x1b) ++j;
        i = std::min(j, text.size() - 1);
      } else if (i + 1 < text.size()) {
        ++i;  // a two-byte sequence
      }
      continue;
    }
    if (c == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
      ++i;  // a C1 control character in UTF-8 (0x9b is a CSI on some terminals)
      continue;
    }
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
      continue;
    }
    out += static_cast<char>(c);
  }
  return out;
}

std::string sanitize_foreign(std::string_view text) { return printable(redact_credentials(text)); }

}  // namespace kvb
