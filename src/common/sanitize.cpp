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

std::string sanitize_foreign(std::string_view text) { return printable_text(redact_credentials(text)); }

}  // namespace kvb
