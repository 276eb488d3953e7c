// S3 client: the object operations kvbackup needs, signed with SigV4
// (sigv4.h), over a pooled HTTP transport (http.h), with retries.
//
// Operations: PutObject (Content-MD5 over TLS with an unsigned payload,
// else the payload's SHA-256 signed), multipart upload (create, parts,
// complete; aborted on any failure), GetObject (with a Range), HeadObject,
// DeleteObject, DeleteObjects (1000 keys a request), ListObjectsV2 (every
// page, or one level with a delimiter).
//
// Retries: 500, 502, 503 (SlowDown), 504, 429, 400 RequestTimeout and lost
// connections, with exponential backoff and full jitter, for idempotent
// requests (and for any request that never left); a budget of attempts and
// time bounds them.
//
// Errors name the location and the key, never a credential: "s3://bkt/key:
// PUT: 403 SignatureDoesNotMatch: ... (check the secret key from ...)".
// A wrong region is reported with the region the server names.
//
// Thread-safe: many threads may call at once.
#pragma once

#include "common/error.h"
#include "location/s3/aws_config.h"
#include "net/http_transport.h"
#include "location/s3/xml.h"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kvb::location::s3 {

using net::HeaderList;
using net::HttpRequest;
using net::HttpResponse;
using net::HttpTransport;
using net::TransportOptions;


struct ClientOptions {
  int max_attempts = 10;
  std::chrono::milliseconds base_delay{100};
  std::chrono::milliseconds max_delay{5'000};
  std::chrono::milliseconds retry_budget{120'000};
  uint64_t multipart_threshold = uint64_t{64} << 20;  // larger objects go in parts
  uint64_t part_size = uint64_t{16} << 20;
  TransportOptions transport;
  bool sign_payload = false;  // sign the SHA-256 of bodies even over TLS
  std::function<std::chrono::system_clock::time_point()> clock;  // for tests; default: the system clock
};

struct ObjectInfo {
  uint64_t size = 0;
  std::chrono::system_clock::time_point last_modified{};
  std::string etag;
};

class Client {
 public:
  static Result<std::unique_ptr<Client>> create(const Settings& settings, ClientOptions options = {});

  // if_none_match: create only (If-None-Match: *); kAlreadyExists when the key exists.
  Status put_object(const std::string& key, std::string_view body, bool if_none_match = false);
  // The whole object, or `length` bytes from `offset`. kNotFound for a missing key.
  Result<std::string> get_object(const std::string& key, std::optional<std::pair<uint64_t, uint64_t>> range = std::nullopt);
  Result<ObjectInfo> head_object(const std::string& key);
  Status delete_object(const std::string& key);  // a missing key is fine
  Status delete_objects(const std::vector<std::string>& keys);
  // Every object under prefix (all pages); with a delimiter, one level (prefixes too).
  Result<ListPage> list(const std::string& prefix, const std::string& delimiter = {}, size_t max_keys = 0);
  // Is the bucket there and ours to use? (a one-key listing; errors say which problem.)
  Status check_bucket();

  const Settings& settings() const { return settings_; }
  std::string where(const std::string& key) const;  // "s3://bucket/key"

  // The raw call, for tests: signs, retries and maps errors as the operations do.
  struct Call {
    std::string method;
    std::string key;  // empty: the bucket itself
    std::vector<std::pair<std::string, std::string>> query;
    HeaderList headers;
    std::string_view body;
    bool idempotent = true;
    bool head = false;
  };
  Result<HttpResponse> call(const Call& c);

 private:
  Client(Settings s, ClientOptions o, std::unique_ptr<HttpTransport> t);
  Status put_multipart(const std::string& key, std::string_view body);
  Error error_from(const Call& c, const HttpResponse& r) const;

  Settings settings_;
  ClientOptions options_;
  std::unique_ptr<HttpTransport> transport_;
};

}  // namespace kvb::location::s3
