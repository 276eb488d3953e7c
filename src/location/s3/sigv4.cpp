#include "location/s3/sigv4.h"

#include "common/hex.h"
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <ctime>

namespace kvb::location::s3 {
namespace {

std::array<unsigned char, 32> hmac(std::string_view key, std::string_view data) {
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()), data.size(),
       out.data(), &len);
  return out;
}

std::string_view view(const std::array<unsigned char, 32>& a) { return {reinterpret_cast<const char*>(a.data()), a.size()}; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Trims and collapses inner runs of spaces, as SigV4 canonical headers require.
std::string canonical_value(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> signed_header_list(const SignRequest& r) {
  std::vector<std::pair<std::string, std::string>> h;
  for (const auto& [k, v] : r.headers) {
    std::string name = lower(k);
    if (name == "user-agent" || name == "expect" || name == "x-amzn-trace-id") continue;
    h.emplace_back(std::move(name), canonical_value(v));
  }
  std::stable_sort(h.begin(), h.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  // Repeated headers sign as one, values joined by commas.
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& kv : h) {
    if (!out.empty() && out.back().first == kv.first) {
      out.back().second += "," + kv.second;
    } else {
      out.push_back(std::move(kv));
    }
  }
  return out;
}

}  // namespace

std::string uri_encode(std::string_view s, bool keep_slash) {
  static const char* digits = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(digits[c >> 4]);
      out.push_back(digits[c & 15]);
    }
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), d);
  return hex_encode(d);
}

std::string amz_date(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string canonical_request(const SignRequest& r) {
  std::vector<std::pair<std::string, std::string>> q;
  q.reserve(r.query.size());
  for (const auto& [k, v] : r.query) q.emplace_back(uri_encode(k, false), uri_encode(v, false));
  std::sort(q.begin(), q.end());
  std::string query;
  for (const auto& [k, v] : q) query += (query.empty() ? "" : "&") + k + "=" + v;
  std::string headers, names;
  for (const auto& [k, v] : signed_header_list(r)) {
    headers += k + ":" + v + "\n";
    names += (names.empty() ? "" : ";") + k;
  }
  std::string path = r.path.empty() ? "/" : r.path;
  return r.method + "\n" + uri_encode(path, true) + "\n" + query + "\n" + headers + "\n" + names + "\n" + r.payload_hash;
}

std::string string_to_sign(const std::string& canonical, const std::string& date, const std::string& scope) {
  return "AWS4-HMAC-SHA256\n" + date + "\n" + scope + "\n" + sha256_hex(canonical);
}

Signature sign(const SignRequest& r, const Credentials& c, std::string_view region, std::string_view service,
               std::chrono::system_clock::time_point now) {
  std::string date = amz_date(now);
  std::string day = date.substr(0, 8);
  std::string scope = day + "/" + std::string(region) + "/" + std::string(service) + "/aws4_request";
  Signature s;
  s.canonical = canonical_request(r);
  for (const auto& [k, v] : signed_header_list(r)) s.signed_headers += (s.signed_headers.empty() ? "" : ";") + k;
  auto k_date = hmac("AWS4" + c.secret_access_key.reveal(), day);
  auto k_region = hmac(view(k_date), region);
  auto k_service = hmac(view(k_region), service);
  auto k_signing = hmac(view(k_service), "aws4_request");
  auto sig = hmac(view(k_signing), string_to_sign(s.canonical, date, scope));
  s.authorization = "AWS4-HMAC-SHA256 Credential=" + c.access_key_id + "/" + scope + ", SignedHeaders=" + s.signed_headers +
                    ", Signature=" + hex_encode(sig);
  return s;
}

}  // namespace kvb::location::s3
