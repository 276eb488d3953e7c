#include "location/s3/client.h"

#include "common/base64.h"
#include "location/s3/sigv4.h"
#include "version.h"

#include <openssl/evp.h>

#include <algorithm>
#include <random>
#include <thread>

namespace kvb::location::s3 {
namespace {

using Clock = std::chrono::steady_clock;

std::string md5_base64(std::string_view data) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), d, &n, EVP_md5(), nullptr);
  return base64_encode(std::string_view(reinterpret_cast<const char*>(d), n));
}

bool transient_status(int status, const std::string& code) {
  return status == 500 || status == 502 || status == 503 || status == 504 || status == 429 || code == "RequestTimeout" ||
         code == "SlowDown" || code == "BadDigest" || code == "XAmzContentSHA256Mismatch" || code == "InternalError";
}

std::string first_line(std::string s, size_t max = 300) {
  if (auto nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
  if (s.size() > max) s = s.substr(0, max) + "...";
  return s;
}

}  // namespace

Client::Client(Settings s, ClientOptions o, std::unique_ptr<HttpTransport> t)
    : settings_(std::move(s)), options_(std::move(o)), transport_(std::move(t)) {
  if (!options_.clock) options_.clock = [] { return std::chrono::system_clock::now(); };
}

Result<std::unique_ptr<Client>> Client::create(const Settings& settings, ClientOptions options) {
  TransportOptions t = options.transport;
  if (t.ca_bundle_file.empty()) t.ca_bundle_file = settings.ca_bundle;
  t.trust_hint = ", AWS_CA_BUNDLE or ?ca_bundle=";
  auto transport = HttpTransport::create(settings.endpoint, t);
  if (!transport) return Error(transport.error().code, settings.display + ": " + transport.error().message);
  return std::unique_ptr<Client>(new Client(settings, std::move(options), std::move(*transport)));
}

std::string Client::where(const std::string& key) const { return "s3://" + settings_.bucket + (key.empty() ? "" : "/" + key); }

Result<HttpResponse> Client::call(const Call& c) {
  // The path as signed and as sent: /bucket/key (path style) or /key.
  std::string path = settings_.path_style ? "/" + settings_.bucket : "";
  path += "/" + c.key;
  if (settings_.path_style && c.key.empty()) path = "/" + settings_.bucket;
  std::vector<std::pair<std::string, std::string>> q;
  for (const auto& [k, v] : c.query) q.emplace_back(uri_encode(k, false), uri_encode(v, false));
  std::sort(q.begin(), q.end());
  std::string target = uri_encode(path, true);
  for (size_t i = 0; i < q.size(); ++i) target += (i ? "&" : "?") + q[i].first + "=" + q[i].second;

  const bool hash_body = !settings_.tls || options_.sign_payload || c.body.empty();
  const std::string payload_hash = hash_body ? sha256_hex(c.body) : std::string(kUnsignedPayload);
  const auto start = Clock::now();
  std::mt19937_64 rng(std::random_device{}());
  Error last;
  for (int attempt = 1;; ++attempt) {
    auto now = options_.clock();
    SignRequest sr;
    sr.method = c.method;
    sr.path = path;
    sr.query = c.query;
    sr.headers = c.headers;
    sr.headers.emplace_back("host", transport_->host_header());
    sr.headers.emplace_back("x-amz-date", amz_date(now));
    sr.headers.emplace_back("x-amz-content-sha256", payload_hash);
    if (!settings_.credentials.session_token.empty()) sr.headers.emplace_back("x-amz-security-token", settings_.credentials.session_token.reveal());
    sr.payload_hash = payload_hash;
    auto sig = sign(sr, settings_.credentials, settings_.region, "s3", now);
    HttpRequest req;
    req.method = c.method;
    req.target = target;
    req.head = c.head;
    req.body = c.body;
    for (auto& h : sr.headers) {
      if (h.first != "host") req.headers.push_back(h);
    }
    req.headers.emplace_back("Authorization", sig.authorization);
    req.headers.emplace_back("User-Agent", std::string("kvbackup/") + kKvbackupVersion);
    bool sent = false;
    auto r = transport_->exchange(req, &sent);
    bool retry = false;
    if (r) {
      if (r->status < 300) return r;
      auto body = parse_error_body(r->body);
      last = error_from(c, *r);
      retry = transient_status(r->status, body.code);
    } else {
      last = r.error();
      last.message = where(c.key) + ": " + c.method + ": " + last.message;
      retry = c.idempotent || !sent;
    }
    auto elapsed = Clock::now() - start;
    if (!retry || attempt >= options_.max_attempts || elapsed >= options_.retry_budget) {
      if (retry && attempt > 1) last.message += " (after " + std::to_string(attempt) + " attempts)";
      return last;
    }
    // Exponential backoff with full jitter; Retry-After when the server gives one.
    auto cap = std::min<int64_t>(options_.max_delay.count(), options_.base_delay.count() << std::min(attempt - 1, 20));
    std::uniform_int_distribution<int64_t> pick(0, std::max<int64_t>(cap, 1));
    std::this_thread::sleep_for(std::chrono::milliseconds(pick(rng)));
  }
}

Error Client::error_from(const Call& c, const HttpResponse& r) const {
  auto body = parse_error_body(r.body);
  std::string code = body.code;
  if (code.empty()) {
    code = r.status == 404 ? (c.key.empty() ? "NoSuchBucket" : "NoSuchKey")
         : r.status == 403 ? "Forbidden"
         : r.status == 301 ? "PermanentRedirect"
         : "HTTP" + std::to_string(r.status);
  }
  std::string what = where(c.key) + ": " + c.method + ": " + std::to_string(r.status) + " " + code;
  if (!body.message.empty()) what += ": " + first_line(body.message);
  Error e(Errc::kIo, what);
  e.http_status = r.status;
  e.reason = code;
  std::string region = body.region.empty() ? r.header("x-amz-bucket-region") : body.region;
  if (code == "NoSuchKey") {
    e.code = Errc::kNotFound;
    e.message = where(c.key) + " does not exist";
  } else if (code == "NoSuchBucket") {
    e.code = Errc::kNotFound;
    e.message = "bucket " + settings_.bucket + " does not exist at " + settings_.endpoint + " (" + what + ")";
  } else if (code == "InvalidAccessKeyId") {
    e.code = Errc::kForbidden;
    e.message = what + " (the access key id from " + settings_.credentials_origin + " is unknown to " + settings_.endpoint + ")";
  } else if (code == "SignatureDoesNotMatch") {
    e.code = Errc::kForbidden;
    e.message = what + " (the secret access key from " + settings_.credentials_origin + " does not belong to its access key id)";
  } else if (code == "RequestTimeTooSkewed") {
    e.code = Errc::kForbidden;
    e.message = what + " (this machine's clock is more than 15 minutes off the server's)";
  } else if (code == "AccessDenied" || code == "Forbidden") {
    e.code = Errc::kForbidden;
    e.message = what + " (the credentials from " + settings_.credentials_origin + " may not do this)";
  } else if (!region.empty() && region != settings_.region &&
             (code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed" || code == "IllegalLocationConstraintException" ||
              r.status == 301)) {
    e.code = Errc::kConfig;
    e.message = "bucket " + settings_.bucket + " is in region " + region + ", not " + settings_.region + " (from " +
                settings_.region_origin + "): set AWS_REGION=" + region + " or add ?region=" + region + " to the location (" + what + ")";
  } else if (code == "PreconditionFailed") {
    e.code = Errc::kAlreadyExists;
  } else if (r.status == 503 || code == "SlowDown") {
    e.code = Errc::kServiceUnavailable;
  } else if (r.status >= 500) {
    e.code = Errc::kInternal;
  } else if (r.status == 429) {
    e.code = Errc::kTooManyRequests;
  }
  return e;
}

Status Client::put_object(const std::string& key, std::string_view body, bool if_none_match) {
  if (body.size() > options_.multipart_threshold && !if_none_match) return put_multipart(key, body);
  Call c{"PUT", key, {}, {}, body, true, false};
  if (settings_.tls && !options_.sign_payload) c.headers.emplace_back("content-md5", md5_base64(body));
  if (if_none_match) c.headers.emplace_back("if-none-match", "*");
  KVB_TRY(auto r, call(c));
  (void)r;
  return ok();
}

Status Client::put_multipart(const std::string& key, std::string_view body) {
  Call create{"POST", key, {{"uploads", ""}}, {}, {}, false, false};
  KVB_TRY(auto created, call(create));
  auto id = parse_upload_id(created.body);
  if (!id) return Error(Errc::kParse, where(key) + ": " + id.error().message);
  auto abort = [&](Error e) -> Error {
    Call a{"DELETE", key, {{"uploadId", *id}}, {}, {}, true, false};
    if (auto st = call(a); !st) e.message += "; the unfinished upload could not be aborted either (" + st.error().message + ")";
    return e;
  };
  std::vector<std::pair<int, std::string>> parts;
  for (uint64_t off = 0, n = 1; off < body.size(); off += options_.part_size, ++n) {
    auto part = body.substr(off, options_.part_size);
    Call up{"PUT", key, {{"partNumber", std::to_string(n)}, {"uploadId", *id}}, {}, part, true, false};
    if (settings_.tls && !options_.sign_payload) up.headers.emplace_back("content-md5", md5_base64(part));
    auto r = call(up);
    if (!r) return abort(r.error());
    std::string etag = r->header("ETag");
    if (etag.empty()) return abort(Error(Errc::kParse, where(key) + ": part " + std::to_string(n) + ": no ETag in the answer"));
    parts.emplace_back(static_cast<int>(n), etag);
  }
  std::string xml = complete_multipart_xml(parts);
  Call done{"POST", key, {{"uploadId", *id}}, {{"content-type", "application/xml"}}, xml, true, false};
  auto r = call(done);
  if (!r) {
    // A retried complete that had succeeded meets NoSuchUpload: the object tells.
    if (r.error().reason == "NoSuchUpload") {
      auto info = head_object(key);
      if (info && info->size == body.size()) return ok();
    }
    return abort(r.error());
  }
  // CompleteMultipartUpload may fail after answering 200: the error is in the body.
  if (auto err = parse_error_body(r->body); !err.code.empty()) {
    return abort(Error(Errc::kIo, where(key) + ": completing the multipart upload: " + err.code + ": " + first_line(err.message)));
  }
  return ok();
}

Result<std::string> Client::get_object(const std::string& key, std::optional<std::pair<uint64_t, uint64_t>> range) {
  Call c{"GET", key, {}, {}, {}, true, false};
  if (range) {
    if (range->second == 0) return std::string();
    c.headers.emplace_back("range", "bytes=" + std::to_string(range->first) + "-" + std::to_string(range->first + range->second - 1));
  }
  KVB_TRY(auto r, call(c));
  if (range) {
    if (r.status != 206 && r.body.size() != range->second) {
      // A server that ignored the Range sent the whole object: cut the range out of it.
      if (r.body.size() >= range->first + range->second) return r.body.substr(range->first, range->second);
    }
    if (r.body.size() != range->second) {
      return Error(Errc::kDamaged, where(key) + ": asked for " + std::to_string(range->second) + " bytes at " + std::to_string(range->first) +
                                       ", got " + std::to_string(r.body.size()) + " (the object is shorter than its index says)");
    }
  } else if (auto cl = r.header("Content-Length"); !cl.empty() && cl != std::to_string(r.body.size())) {
    return Error(Errc::kTransport, where(key) + ": the body was cut short");
  }
  return std::move(r.body);
}

Result<ObjectInfo> Client::head_object(const std::string& key) {
  Call c{"HEAD", key, {}, {}, {}, true, true};
  KVB_TRY(auto r, call(c));
  ObjectInfo info;
  try {
    info.size = std::stoull(r.header("Content-Length").empty() ? "0" : r.header("Content-Length"));
  } catch (const std::exception&) {
    return Error(Errc::kParse, where(key) + ": HEAD: malformed Content-Length");
  }
  info.etag = r.header("ETag");
  return info;
}

Status Client::delete_object(const std::string& key) {
  Call c{"DELETE", key, {}, {}, {}, true, false};
  auto r = call(c);
  if (!r && r.error().code != Errc::kNotFound) return r.error();
  return ok();
}

Status Client::delete_objects(const std::vector<std::string>& keys) {
  for (size_t at = 0; at < keys.size(); at += 1000) {
    std::vector<std::string> batch(keys.begin() + static_cast<std::ptrdiff_t>(at),
                                   keys.begin() + static_cast<std::ptrdiff_t>(std::min(keys.size(), at + 1000)));
    std::string xml = delete_objects_xml(batch);
    Call c{"POST", "", {{"delete", ""}}, {{"content-md5", md5_base64(xml)}, {"content-type", "application/xml"}}, xml, true, false};
    KVB_TRY(auto r, call(c));
    KVB_TRY(auto errors, parse_delete_errors(r.body));
    for (const auto& [key, code] : errors) {
      if (code != "NoSuchKey") return Error(Errc::kIo, where(key) + ": DeleteObjects: " + code);
    }
  }
  return ok();
}

Result<ListPage> Client::list(const std::string& prefix, const std::string& delimiter, size_t max_keys) {
  ListPage all;
  std::string token;
  for (;;) {
    Call c{"GET", "", {{"list-type", "2"}, {"prefix", prefix}}, {}, {}, true, false};
    if (!delimiter.empty()) c.query.emplace_back("delimiter", delimiter);
    if (max_keys > 0) c.query.emplace_back("max-keys", std::to_string(max_keys));
    if (!token.empty()) c.query.emplace_back("continuation-token", token);
    KVB_TRY(auto r, call(c));
    auto page = parse_list_objects_v2(r.body);
    if (!page) return Error(Errc::kParse, where(prefix) + ": " + page.error().message);
    for (auto& o : page->objects) all.objects.push_back(std::move(o));
    for (auto& p : page->prefixes) all.prefixes.push_back(std::move(p));
    if (!page->truncated || (max_keys > 0 && all.objects.size() + all.prefixes.size() >= max_keys)) break;
    token = page->next_token;
  }
  return all;
}

Status Client::check_bucket() {
  // A listing rather than HEAD: an error then comes with a body that names it
  // (SignatureDoesNotMatch, InvalidAccessKeyId, NoSuchBucket, the bucket's region).
  Call c{"GET", "", {{"list-type", "2"}, {"max-keys", "1"}, {"prefix", settings_.prefix}}, {}, {}, true, false};
  auto r = call(c);
  if (r) return ok();
  return r.error();
}

}  // namespace kvb::location::s3
