// TestApiServer: an HTTPS server started inside a test, with a throwaway CA,
// whose behaviour each test scripts with a handler. Used to test src/kube
// against real sockets and TLS without the full test cluster.
#pragma once

#include "kube/config.h"
#include "testcluster/net/certs.h"
#include "testcluster/net/http_server.h"

#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

namespace kvb::testing {

using testcluster::HeaderList;
using testcluster::Responder;
using testcluster::ServerRequest;
using testcluster::ServerResponse;

struct RecordedRequest {
  std::string method;
  std::string target;
  std::string path;
  std::string authorization;
  std::string content_type;
  std::string body;
  std::string client_cn;
  uint64_t connection_id = 0;
};

class TestApiServer {
 public:
  struct Options {
    bool tls = true;
    bool verify_client_certs = false;
    std::vector<std::string> dns_names{"localhost"};
    std::vector<std::string> ip_addresses{"127.0.0.1"};
  };

  TestApiServer();
  explicit TestApiServer(Options options);
  ~TestApiServer();

  // The handler runs on the server's loop thread. Requests are recorded first.
  void set_handler(testcluster::Handler handler);

  std::string url() const { return server_->url(); }
  uint16_t port() const { return server_->port(); }
  const testcluster::KeyPair& ca() const { return ca_; }
  testcluster::EventLoop& loop() { return loop_; }
  uint64_t connections() const { return server_->connections_accepted(); }

  // A RestConfig for this server: CA data and bearer token "test-token".
  kube::RestConfig rest_config() const;
  std::vector<RecordedRequest> requests() const;
  size_t request_count() const;

  // Issues a client certificate signed by the server's CA.
  testcluster::KeyPair client_certificate(const std::string& cn) const;

  static ServerResponse json(int status, std::string body);

 private:
  Options options_;
  testcluster::KeyPair ca_;
  testcluster::EventLoop loop_;
  std::unique_ptr<testcluster::HttpServer> server_;
  mutable std::mutex mu_;
  testcluster::Handler handler_;
  std::vector<RecordedRequest> requests_;
};

// A fresh temporary directory removed at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  void write(const std::string& name, const std::string& content, unsigned mode = 0644) const;

 private:
  std::filesystem::path path_;
};

}  // namespace kvb::testing
