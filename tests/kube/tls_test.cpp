#include "kube/client.h"
#include "tests/support/test_api_server.h"

#include <gtest/gtest.h>

namespace kvb::kube {
namespace {

using testing::TestApiServer;

void answer_ok(TestApiServer& s) {
  s.set_handler([](testing::ServerRequest&& req, std::shared_ptr<testing::Responder> r) {
    r->respond(TestApiServer::json(200, R"({"metadata":{"name":")" + req.client_common_name + "\"}}"));
  });
}

Result<boost::json::object> get_once(const RestConfig& rc) {
  auto c = Client::create(rc);
  if (!c) return c.error();
  CallOptions o;
  o.retry = false;
  return (*c)->get(resources::kPods, "ns", "p", o);
}

TEST(KubeTls, VerifiesTheServerAgainstTheConfiguredCa) {
  TestApiServer server;
  answer_ok(server);
  EXPECT_TRUE(get_once(server.rest_config()));

  TestApiServer other;  // a different CA
  auto rc = server.rest_config();
  rc.cluster.ca_pem = other.ca().cert_pem;
  auto r = get_once(rc);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kTls);
  EXPECT_NE(r.error().message.find("cannot be verified"), std::string::npos) << r.error().message;
}

TEST(KubeTls, WithoutACaTheSystemStoreIsUsedAndRejectsTheTestCa) {
  TestApiServer server;
  answer_ok(server);
  auto rc = server.rest_config();
  rc.cluster.ca_pem.clear();
  auto r = get_once(rc);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kTls);
}

TEST(KubeTls, HostnameMustMatchUnlessTlsServerNameSaysOtherwise) {
  TestApiServer::Options o;
  o.dns_names = {"api.cluster.internal"};
  o.ip_addresses = {};
  TestApiServer server(o);
  answer_ok(server);
  auto r = get_once(server.rest_config());  // connects to 127.0.0.1, cert is for api.cluster.internal
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kTls);

  auto rc = server.rest_config();
  rc.cluster.tls_server_name = "api.cluster.internal";
  auto good = get_once(rc);
  EXPECT_TRUE(good) << good.error().describe();
}

TEST(KubeTls, InsecureSkipVerifyAcceptsAnyCertificate) {
  TestApiServer server;
  answer_ok(server);
  auto rc = server.rest_config();
  rc.cluster.ca_pem.clear();
  rc.cluster.insecure_skip_tls_verify = true;
  EXPECT_TRUE(get_once(rc));
}

TEST(KubeTls, ClientCertificateAuthentication) {
  TestApiServer::Options o;
  o.verify_client_certs = true;
  TestApiServer server(o);
  answer_ok(server);
  auto kp = server.client_certificate("system:serviceaccount:kvbackup:kvbackup");
  auto rc = server.rest_config();
  rc.user.token = Secret();
  rc.user.client_certificate_pem = kp.cert_pem;
  rc.user.client_key_pem = Secret(kp.key_pem);
  auto r = get_once(rc);
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(server.requests().back().client_cn, "system:serviceaccount:kvbackup:kvbackup");
  EXPECT_EQ(server.requests().back().authorization, "");
}

TEST(KubeTls, BadCaOrKeyIsAConfigErrorAtCreation) {
  TestApiServer server;
  auto rc = server.rest_config();
  rc.cluster.ca_pem = "not a certificate";
  auto c = Client::create(rc);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, Errc::kConfig);
  EXPECT_NE(c.error().message.find("test CA"), std::string::npos) << c.error().message;

  auto rc2 = server.rest_config();
  rc2.user.client_certificate_pem = server.client_certificate("x").cert_pem;
  rc2.user.client_key_pem = Secret("-----BEGIN PRIVATE KEY-----\nsecretkeymaterial\n-----END PRIVATE KEY-----\n");
  auto r = get_once(rc2);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kConfig);
  EXPECT_EQ(r.error().message.find("secretkeymaterial"), std::string::npos);
}

TEST(KubeTls, PlainHttpServersWorkForKubectlProxy) {
  TestApiServer::Options o;
  o.tls = false;
  TestApiServer server(o);
  answer_ok(server);
  auto rc = server.rest_config();
  EXPECT_EQ(rc.cluster.server.rfind("http://", 0), 0u);
  EXPECT_TRUE(get_once(rc));
}

}  // namespace
}  // namespace kvb::kube
