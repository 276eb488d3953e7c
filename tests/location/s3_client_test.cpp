// The S3 client against real servers: Ceph's RADOS Gateway (verifies
// signatures) and s3rver; the errors a user meets (wrong key, wrong secret,
// skewed clock, missing bucket, wrong region, unreachable endpoint, a TLS
// certificate for another host); and awscli reading what kvbackup wrote.
#include "location/s3/client.h"
#include "tests/support/s3_servers.h"
#include "tests/support/test_api_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <random>
#include <set>

namespace kvb::location::s3 {
namespace {
using ::testing::HasSubstr;
using ::testing::Not;
using kvb::testing::S3Server;

Getenv env_for(const S3Server& s, std::map<std::string, std::string> extra = {}) {
  std::map<std::string, std::string> vars;
  for (const auto& [k, v] : kvb::testing::s3_env(s)) vars[k] = v;
  for (const auto& [k, v] : extra) vars[k] = v;
  return [vars](const std::string& k) -> std::optional<std::string> {
    auto it = vars.find(k);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

ClientOptions fast_retries() {
  ClientOptions o;
  o.max_attempts = 4;
  o.base_delay = std::chrono::milliseconds(20);
  o.max_delay = std::chrono::milliseconds(200);
  o.transport.connect_timeout = std::chrono::milliseconds(3000);
  return o;
}

std::unique_ptr<Client> client_for(const S3Server& s, const std::string& url_suffix = "", std::map<std::string, std::string> extra = {},
                                   ClientOptions o = fast_retries()) {
  auto u = parse_s3_url("s3://" + s.bucket + "/client-test" + url_suffix);
  if (!u) throw std::runtime_error(u.error().message);
  auto st = resolve_settings(*u, env_for(s, extra));
  if (!st) throw std::runtime_error(st.error().message);
  auto c = Client::create(*st, o);
  if (!c) throw std::runtime_error(c.error().message);
  return std::move(*c);
}

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& ch : s) ch = static_cast<char>(rng());
  return s;
}

class S3ClientOn : public ::testing::TestWithParam<const char*> {
 protected:
  const S3Server& server() { return std::string(GetParam()) == "radosgw" ? kvb::testing::radosgw() : kvb::testing::s3rver(); }
};

TEST_P(S3ClientOn, PutGetRangeHeadListDeleteAndMultipart) {
  const auto& s = server();
  ASSERT_TRUE(s.ok);
  auto c = client_for(s);
  const std::string base = "client-test/" + std::string(GetParam()) + "/";
  std::string body = random_bytes(300'000, 1);
  ASSERT_TRUE(c->put_object(base + "plain", body));
  auto got = c->get_object(base + "plain");
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_TRUE(*got == body);
  auto range = c->get_object(base + "plain", std::make_pair(uint64_t{1000}, uint64_t{5000}));
  ASSERT_TRUE(range) << range.error().message;
  EXPECT_TRUE(*range == body.substr(1000, 5000));
  auto head = c->head_object(base + "plain");
  ASSERT_TRUE(head) << head.error().message;
  EXPECT_EQ(head->size, body.size());
  auto missing = c->get_object(base + "no such key");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::kNotFound);

  // Continuation tokens: pages of 2. Only on radosgw: s3rver 3.7.1 cannot make
  // a continuation token on Node 20 (its cipher call throws; every truncated
  // listing is a 500), which the real server does not share.
  const bool pages = std::string(GetParam()) == "radosgw";
  for (const char* k : {"page/a", "page/b", "page/c", "page/d", "page/e"}) ASSERT_TRUE(c->put_object(base + k, k));
  if (pages) {
    Client::Call page{"GET", "", {{"list-type", "2"}, {"prefix", base + "page/"}, {"max-keys", "2"}}, {}, {}, true, false};
    auto first = c->call(page);
    ASSERT_TRUE(first) << first.error().message;
    auto parsed = parse_list_objects_v2(first->body);
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->objects.size(), 2u);
    EXPECT_TRUE(parsed->truncated);
    page.query.emplace_back("continuation-token", parsed->next_token);
    auto second = c->call(page);
    ASSERT_TRUE(second) << second.error().message;
    auto parsed2 = parse_list_objects_v2(second->body);
    ASSERT_TRUE(parsed2);
    ASSERT_EQ(parsed2->objects.size(), 2u);
    EXPECT_EQ(parsed2->objects[0].key, base + "page/c");
  }
  auto whole = c->list(base + "page/");
  ASSERT_TRUE(whole) << whole.error().message;
  EXPECT_EQ(whole->objects.size(), 5u);
  // Keys with spaces, '+', '=', unicode and '~' round-trip and list back as they are.
  std::vector<std::string> odd = {base + "dir/with space", base + "dir/plus+equals=", base + "dir/ünï/鍵", base + "dir/tilde~x", base + "dir/amp&lt"};
  for (const auto& k : odd) ASSERT_TRUE(c->put_object(k, k)) << k;
  auto listed = c->list(base + "dir/");
  ASSERT_TRUE(listed) << listed.error().message;
  std::set<std::string> keys;
  for (const auto& o : listed->objects) keys.insert(o.key);
  EXPECT_EQ(keys, std::set<std::string>(odd.begin(), odd.end()));
  for (const auto& k : odd) EXPECT_EQ(*c->get_object(k), k) << k;

  // One level with a delimiter: "dir/" is a common prefix.
  auto level = c->list(base, "/");
  ASSERT_TRUE(level);
  EXPECT_THAT(level->prefixes, ::testing::Contains(base + "dir/"));

  // Multipart: a threshold below the body's size.
  auto mo = fast_retries();
  mo.multipart_threshold = 1 << 20;
  mo.part_size = 5 << 20;
  auto mc = client_for(s, "", {}, mo);
  std::string big = random_bytes(12 << 20, 2);
  ASSERT_TRUE(mc->put_object(base + "multipart", big));
  auto back = mc->get_object(base + "multipart");
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_TRUE(*back == big);
  EXPECT_EQ(mc->head_object(base + "multipart")->size, big.size());

  // DeleteObjects, and deleting what is gone is fine.
  std::vector<std::string> all = odd;
  for (const char* k : {"page/a", "page/b", "page/c", "page/d", "page/e"}) all.push_back(base + k);
  all.push_back(base + "plain");
  all.push_back(base + "multipart");
  ASSERT_TRUE(c->delete_objects(all));
  EXPECT_TRUE(c->list(base)->objects.empty());
  EXPECT_TRUE(c->delete_object(base + "plain"));
}

INSTANTIATE_TEST_SUITE_P(Servers, S3ClientOn, ::testing::Values("radosgw", "s3rver"));

TEST(S3Client, RadosgwRefusesBadCredentialsAndSaysWhy) {
  const auto& s = kvb::testing::radosgw();
  ASSERT_TRUE(s.ok);
  auto wrong_secret = client_for(s, "", {{"AWS_SECRET_ACCESS_KEY", "not-the-secret-0123456789"}});
  auto r1 = wrong_secret->put_object("client-test/x", "x");
  ASSERT_FALSE(r1);
  EXPECT_EQ(r1.error().code, Errc::kForbidden);
  EXPECT_THAT(r1.error().message, HasSubstr("SignatureDoesNotMatch"));
  EXPECT_THAT(r1.error().message, HasSubstr("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"));
  EXPECT_THAT(r1.error().message, HasSubstr("s3://kvbtest/client-test/x"));
  EXPECT_THAT(r1.error().message, Not(HasSubstr("not-the-secret")));

  auto unknown = client_for(s, "", {{"AWS_ACCESS_KEY_ID", "AKIDUNKNOWN00000"}});
  auto r2 = unknown->get_object("client-test/x");
  ASSERT_FALSE(r2);
  EXPECT_THAT(r2.error().message, HasSubstr("InvalidAccessKeyId"));
  EXPECT_THAT(r2.error().message, HasSubstr("unknown to"));

  auto skewed_opts = fast_retries();
  skewed_opts.clock = [] { return std::chrono::system_clock::now() - std::chrono::minutes(20); };
  auto skewed = client_for(s, "", {}, skewed_opts);
  auto r3 = skewed->get_object("client-test/x");
  ASSERT_FALSE(r3);
  EXPECT_THAT(r3.error().message, HasSubstr("RequestTimeTooSkewed"));
  EXPECT_THAT(r3.error().message, HasSubstr("clock"));

  // A session token the server does not know is refused too (RGW without STS).
  auto token = client_for(s, "", {{"AWS_SESSION_TOKEN", "FwoGZXIvYXdzEJr-session-token"}});
  auto r4 = token->get_object("client-test/x");
  ASSERT_FALSE(r4);
  EXPECT_THAT(r4.error().message, Not(HasSubstr("FwoGZXIvYXdzEJr")));
}

TEST(S3Client, MissingBucketWrongRegionUnreachableAndForeignCertificate) {
  const auto& s = kvb::testing::radosgw();
  ASSERT_TRUE(s.ok);
  S3Server other = s;
  other.bucket = "kvb-no-such-bucket";
  auto nb = client_for(other);
  auto b = nb->check_bucket();
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, Errc::kNotFound);
  EXPECT_THAT(b.error().message, HasSubstr("bucket kvb-no-such-bucket does not exist"));

  // AWS answers a request signed for the wrong region with a redirect naming the right one.
  const auto& proxy = kvb::testing::fault_proxy();
  ASSERT_TRUE(proxy.ok);
  kvb::testing::set_proxy_faults(R"([{"fault": "redirect", "region": "eu-central-1", "count": 1}])");
  auto via = client_for(proxy);
  auto r = via->check_bucket();
  kvb::testing::set_proxy_faults("[]");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kConfig);
  EXPECT_THAT(r.error().message, HasSubstr("is in region eu-central-1, not us-east-1"));
  EXPECT_THAT(r.error().message, HasSubstr("AWS_REGION=eu-central-1"));

  S3Server closed = s;
  closed.endpoint = "http://127.0.0.1:1";
  auto unreachable = client_for(closed);
  auto u = unreachable->get_object("x");
  ASSERT_FALSE(u);
  EXPECT_EQ(u.error().code, Errc::kTransport);
  EXPECT_THAT(u.error().message, HasSubstr("s3://kvbtest/x"));
  EXPECT_THAT(u.error().message, HasSubstr("127.0.0.1:1"));

  // An HTTPS endpoint whose certificate names another host.
  kvb::testing::TestApiServer::Options names;
  names.dns_names = {"s3.other.example"};
  names.ip_addresses = {};
  kvb::testing::TestApiServer tls(names);
  kvb::testing::TempDir dir;
  dir.write("ca.pem", tls.ca().cert_pem);
  S3Server foreign = s;
  foreign.endpoint = "https://127.0.0.1:" + std::to_string(tls.port());
  auto fc = client_for(foreign, "", {{"AWS_CA_BUNDLE", (dir / "ca.pem").string()}});
  auto f = fc->get_object("x");
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, Errc::kTls);
  EXPECT_THAT(f.error().message, HasSubstr("certificate"));
  // A server whose certificate names it is trusted through the CA bundle.
  kvb::testing::TestApiServer own_tls;
  dir.write("own-ca.pem", own_tls.ca().cert_pem);
  S3Server own = s;
  own.endpoint = "https://127.0.0.1:" + std::to_string(own_tls.port());
  auto oc = client_for(own, "", {{"AWS_CA_BUNDLE", (dir / "own-ca.pem").string()}});
  auto o = oc->get_object("x");
  ASSERT_FALSE(o) << "the API server is no S3 server";
  EXPECT_NE(o.error().code, Errc::kTls) << o.error().message;
}

TEST(S3Client, AwscliReadsWhatKvbackupWroteAndKvbackupReadsWhatAwscliWrote) {
  const auto& s = kvb::testing::radosgw();
  ASSERT_TRUE(s.ok);
  auto c = client_for(s);
  std::string body = random_bytes(2 << 20, 3);
  ASSERT_TRUE(c->put_object("client-test/awscli/from kvbackup+1.bin", body));
  auto ls = kvb::testing::run_aws(s, {"s3", "ls", "--recursive", "s3://kvbtest/client-test/awscli/"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_THAT(ls.out, HasSubstr("from kvbackup+1.bin"));
  EXPECT_THAT(ls.out, HasSubstr(std::to_string(body.size())));
  kvb::testing::TempDir dir;
  auto cp = kvb::testing::run_aws(s, {"s3", "cp", "s3://kvbtest/client-test/awscli/from kvbackup+1.bin", (dir / "copy").string()});
  ASSERT_EQ(cp.exit_code, 0) << cp.err;
  std::ifstream in(dir / "copy", std::ios::binary);
  std::string copied((std::istreambuf_iterator<char>(in)), {});
  EXPECT_TRUE(copied == body);

  std::string theirs = random_bytes(9 << 20, 4);  // awscli uploads this in 8 MiB parts
  dir.write("theirs", theirs);
  auto up = kvb::testing::run_aws(s, {"s3", "cp", (dir / "theirs").string(), "s3://kvbtest/client-test/awscli/from awscli.bin"});
  ASSERT_EQ(up.exit_code, 0) << up.err;
  auto got = c->get_object("client-test/awscli/from awscli.bin");
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_TRUE(*got == theirs);
}

}  // namespace
}  // namespace kvb::location::s3
