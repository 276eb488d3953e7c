// SigV4 signatures against botocore's (Debian's python3-botocore,
// S3SigV4Auth) over many requests: RGW does not check the region, so a
// real server alone would not catch every canonicalisation mistake.
#include "location/s3/sigv4.h"

#include "common/subprocess.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <chrono>

namespace kvb::location::s3 {
namespace {
namespace json = boost::json;

struct Case {
  std::string method, host, path;
  std::vector<std::pair<std::string, std::string>> query;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string token;
  std::string region = "us-east-1";
  bool sign_payload = true;
  bool tls = false;
};

// Percent-encoding as botocore's serializer does it (quote(key, safe="/~")),
// written independently of uri_encode.
std::string botocore_quote(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-' || c == '~' || c == '/') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

TEST(SigV4, MatchesBotocoreOverManyRequests) {
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1767225600 + 3723));  // 2026-01-01T01:02:03Z
  const Credentials creds{"AKIDEXAMPLE0000", Secret("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"), Secret()};
  std::vector<Case> cases = {
      {"GET", "127.0.0.1:7480", "/bkt/config", {}, {}, "", ""},
      {"PUT", "127.0.0.1:7480", "/bkt/repo/data/ab/ab12cd", {}, {{"Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg=="}}, "pack bytes", ""},
      {"POST", "127.0.0.1:7480", "/bkt/big.img", {{"uploads", ""}}, {}, "", ""},
      {"PUT", "127.0.0.1:7480", "/bkt/big.img", {{"partNumber", "3"}, {"uploadId", "2~abc/def+ghi="}}, {}, "part", ""},
      {"GET", "127.0.0.1:7480", "/bkt", {{"list-type", "2"}, {"prefix", "repo/data/"}, {"continuation-token", "1/a+b=c d"}}, {}, "", ""},
      {"GET", "127.0.0.1:7480", "/bkt", {{"list-type", "2"}, {"prefix", ""}, {"delimiter", "/"}, {"max-keys", "1000"}}, {}, "", ""},
      {"GET", "127.0.0.1:7480", "/bkt/key with spaces", {}, {{"Range", "bytes=0-1023"}}, "", ""},
      {"GET", "127.0.0.1:7480", "/bkt/plus+and=equals&amp", {}, {}, "", ""},
      {"GET", "127.0.0.1:7480", "/bkt/ünïcödé/ключ/鍵", {}, {}, "", ""},
      {"GET", "127.0.0.1:7480", "/bkt/tilde~and_under-dot.", {}, {}, "", ""},
      {"HEAD", "127.0.0.1:7480", "/bkt/a/b/c", {}, {}, "", ""},
      {"DELETE", "127.0.0.1:7480", "/bkt/a/b/c", {}, {}, "", ""},
      {"POST", "127.0.0.1:7480", "/bkt", {{"delete", ""}}, {{"Content-MD5", "abc=="}, {"Content-Type", "application/xml"}}, "<Delete/>", ""},
      {"PUT", "127.0.0.1:7480", "/bkt/lock", {}, {{"If-None-Match", "*"}}, "{}", "", "eu-central-1"},
      {"GET", "127.0.0.1:7480", "/bkt/x", {}, {}, "", "FwoGZXIvYXdzEJr//////////session+token/=="},
      {"PUT", "s3.eu-west-1.amazonaws.com", "/bkt/tls-unsigned", {}, {{"Content-MD5", "XrY7u+Ae7tCTyyK7j1rNww=="}}, "hello world", "", "eu-west-1", false, true},
      {"PUT", "bkt.s3.us-west-2.amazonaws.com", "/virtual/hosted", {}, {{"Content-MD5", "XrY7u+Ae7tCTyyK7j1rNww=="}}, "hello world", "tok", "us-west-2", false, true},
      {"GET", "127.0.0.1:7480", "/bkt/spaces", {}, {{"X-Amz-Meta-Note", "  two   inner   spaces  "}}, "", ""},
      {"GET", "[::1]:7480", "/bkt/v6", {{"a", "1"}, {"A", "2"}, {"b", ""}}, {}, "", ""},
  };
  json::array in;
  std::vector<Signature> ours;
  for (const auto& c : cases) {
    SignRequest r;
    r.method = c.method;
    r.path = c.path;
    r.query = c.query;
    r.headers = c.headers;
    r.headers.emplace_back("host", c.host);
    r.headers.emplace_back("x-amz-date", amz_date(now));
    r.payload_hash = c.sign_payload ? sha256_hex(c.body) : std::string(kUnsignedPayload);
    r.headers.emplace_back("x-amz-content-sha256", r.payload_hash);
    Credentials cr = creds;
    if (!c.token.empty()) {
      cr.session_token = Secret(c.token);
      r.headers.emplace_back("x-amz-security-token", c.token);
    }
    ours.push_back(sign(r, cr, c.region, "s3", now));

    json::object params, headers;
    for (const auto& [k, v] : c.query) params[k] = v;
    for (const auto& [k, v] : c.headers) headers[k] = v;
    in.push_back(json::object{{"method", c.method},
                              {"url", std::string(c.tls ? "https://" : "http://") + c.host + botocore_quote(c.path)},
                              {"params", params},
                              {"headers", headers},
                              {"body", c.body},
                              {"access_key", creds.access_key_id},
                              {"secret_key", creds.secret_access_key.reveal()},
                              {"token", c.token},
                              {"region", c.region},
                              {"time", amz_date(now)},
                              {"sign_payload", c.sign_payload}});
  }
  ProcessSpec spec;
  spec.argv = {"/usr/bin/python3", std::string(KVB_SOURCE_DIR) + "/tests/location/botocore_sign.py"};
  spec.stdin_data = json::serialize(in);
  auto run = run_process(spec);
  ASSERT_TRUE(run) << run.error().message;
  ASSERT_EQ(run->exit_code, 0) << "botocore (python3-botocore) is needed: " << run->err;
  auto out = json::parse(run->out).as_array();
  ASSERT_EQ(out.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& ref = out[i].as_object();
    EXPECT_EQ(ours[i].canonical, std::string(ref.at("canonical").as_string())) << "case " << i << ": " << cases[i].method << " " << cases[i].path;
    EXPECT_EQ(ours[i].authorization, std::string(ref.at("authorization").as_string())) << "case " << i << ": " << cases[i].method << " "
                                                                                         << cases[i].path;
  }
}

TEST(SigV4, AwsDocumentedExample) {
  // The GET Object example of AWS's SigV4 documentation for S3 ("Example: GET Object").
  SignRequest r;
  r.method = "GET";
  r.path = "/test.txt";
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
               {"Range", "bytes=0-9"},
               {"x-amz-content-sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
               {"x-amz-date", "20130524T000000Z"}};
  r.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  Credentials c{"AKIAIOSFODNN7EXAMPLE", Secret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"), Secret()};
  auto t = std::chrono::system_clock::time_point(std::chrono::seconds(1369353600));
  auto s = sign(r, c, "us-east-1", "s3", t);
  EXPECT_EQ(s.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(s.canonical.find("wJalr"), std::string::npos) << "no secret in what may be shown";
}

TEST(SigV4, UriEncoding) {
  EXPECT_EQ(uri_encode("a b+c=d/e~f", true), "a%20b%2Bc%3Dd/e~f");
  EXPECT_EQ(uri_encode("a/b", false), "a%2Fb");
  EXPECT_EQ(uri_encode("\xc3\xbc", false), "%C3%BC");
}

}  // namespace
}  // namespace kvb::location::s3
