// AWS Signature Version 4 for S3 (header authentication): the canonical
// request, the string to sign and the Authorization header, as AWS documents
// them and as botocore's S3SigV4Auth computes them (tests/location/sigv4_test
// compares against botocore over many requests).
//
// Pure functions: no I/O, no clock (the caller passes the time), so every
// signature is reproducible.
//
// Invariants: S3 paths are URI-encoded once (never twice, unlike other AWS
// services); query parameters are sorted by their encoded names and an empty
// value signs as "name="; header values are trimmed and inner runs of spaces
// collapsed; every header sent is signed except User-Agent. The secret key
// never appears in any output of this module except inside the HMAC.
#pragma once

#include "common/secret.h"

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvb::location::s3 {

struct Credentials {
  std::string access_key_id;
  Secret secret_access_key;
  Secret session_token;  // empty unless temporary credentials (AWS_SESSION_TOKEN)
};

// The payload hash for a request whose body is not hashed (allowed over TLS).
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";

struct SignRequest {
  std::string method;                                      // "GET", "PUT", ...
  std::string path;                                        // raw (not encoded), e.g. "/bucket/key with space"
  std::vector<std::pair<std::string, std::string>> query;  // raw names and values
  std::vector<std::pair<std::string, std::string>> headers;  // as sent, Host included
  std::string payload_hash;                                // hex SHA-256 of the body, or kUnsignedPayload
};

// Percent-encoding of RFC 3986 as SigV4 requires: unreserved characters
// (A-Z a-z 0-9 - . _ ~) as they are, every other byte as %XX (upper case);
// '/' kept when keep_slash.
std::string uri_encode(std::string_view s, bool keep_slash);

std::string sha256_hex(std::string_view data);
std::string amz_date(std::chrono::system_clock::time_point t);  // 20260101T000000Z

std::string canonical_request(const SignRequest& r);
std::string string_to_sign(const std::string& canonical, const std::string& amz_date, const std::string& scope);

struct Signature {
  std::string authorization;   // the Authorization header value
  std::string signed_headers;  // "host;x-amz-content-sha256;x-amz-date"
  std::string canonical;       // the canonical request, for diagnostics (holds no secret)
};

// Signs a request whose headers already include x-amz-date (= amz_date(now)),
// x-amz-content-sha256 and, with a session token, x-amz-security-token.
Signature sign(const SignRequest& r, const Credentials& c, std::string_view region, std::string_view service,
               std::chrono::system_clock::time_point now);

}  // namespace kvb::location::s3
