#include "tests/support/test_api_server.h"

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <sys/stat.h>

namespace kvb::testing {

TestApiServer::TestApiServer() : TestApiServer(Options{}) {}

TestApiServer::TestApiServer(Options options) : options_(std::move(options)) {
  auto ca = testcluster::make_ca("kvbackup-test-ca");
  if (!ca) throw std::runtime_error(ca.error().describe());
  ca_ = *ca;
  testcluster::CertSpec spec;
  spec.common_name = "kube-apiserver";
  spec.dns_names = options_.dns_names;
  spec.ip_addresses = options_.ip_addresses;
  auto cert = testcluster::issue_certificate(ca_, spec);
  if (!cert) throw std::runtime_error(cert.error().describe());
  testcluster::ServerOptions so;
  so.tls = options_.tls;
  so.cert_pem = cert->cert_pem;
  so.key_pem = cert->key_pem;
  if (options_.verify_client_certs) so.client_ca_pem = ca_.cert_pem;
  so.handler = [this](ServerRequest&& req, std::shared_ptr<Responder> r) {
    testcluster::Handler h;
    {
      std::lock_guard lock(mu_);
      requests_.push_back(RecordedRequest{req.method, req.target, req.path, req.header("Authorization"),
                                          req.header("Content-Type"), req.body, req.client_common_name,
                                          req.connection_id});
      h = handler_;
    }
    if (h) {
      h(std::move(req), std::move(r));
    } else {
      r->respond(json(404, R"({"kind":"Status","status":"Failure","reason":"NotFound","code":404})"));
    }
  };
  auto server = testcluster::HttpServer::start(loop_, std::move(so));
  if (!server) throw std::runtime_error(server.error().describe());
  server_ = std::move(*server);
}

TestApiServer::~TestApiServer() {
  server_->stop();
  loop_.stop();
}

void TestApiServer::set_handler(testcluster::Handler handler) {
  std::lock_guard lock(mu_);
  handler_ = std::move(handler);
}

kube::RestConfig TestApiServer::rest_config() const {
  kube::RestConfig rc;
  rc.cluster.server = url();
  rc.cluster.ca_pem = ca_.cert_pem;
  rc.cluster.ca_origin = "test CA";
  rc.user.token = Secret("test-token");
  rc.origin = "test";
  return rc;
}

std::vector<RecordedRequest> TestApiServer::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

size_t TestApiServer::request_count() const {
  std::lock_guard lock(mu_);
  return requests_.size();
}

testcluster::KeyPair TestApiServer::client_certificate(const std::string& cn) const {
  testcluster::CertSpec spec;
  spec.common_name = cn;
  spec.client = true;
  auto kp = testcluster::issue_certificate(ca_, spec);
  if (!kp) throw std::runtime_error(kp.error().describe());
  return *kp;
}

ServerResponse TestApiServer::json(int status, std::string body) {
  ServerResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers.emplace_back("Content-Type", "application/json");
  return r;
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "kvbtest-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void TempDir::write(const std::string& name, const std::string& content, unsigned mode) const {
  auto p = path_ / name;
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << content;
  ::chmod(p.c_str(), mode);
}

}  // namespace kvb::testing
