#include "kube/api_status.h"
#include "kube/exec.h"
#include "kube/exec_protocol.h"
#include "tests/support/test_api_server.h"

#include <gtest/gtest.h>

#include <atomic>

namespace kvb::kube {
namespace {

using testing::TestApiServer;
using testcluster::WebSocket;
using testcluster::WebSocketHandlers;
using namespace std::chrono_literals;

std::shared_ptr<Client> client_for(const TestApiServer& s) {
  auto c = Client::create(s.rest_config());
  if (!c) throw std::runtime_error(c.error().describe());
  return *c;
}

ExecRequest request(std::vector<std::string> cmd) {
  ExecRequest r;
  r.ns = "prod";
  r.pod = "virt-launcher-db-x7k2p";
  r.container = "compute";
  r.command = std::move(cmd);
  r.timeout = 10s;
  return r;
}

// Picks the first offered protocol we "support" (v5 unless v4_only), then runs `script`.
void serve_exec(TestApiServer& server, std::function<void(std::shared_ptr<WebSocket>)> script, bool v4_only = false) {
  server.set_handler([script, v4_only](testing::ServerRequest&& req, std::shared_ptr<testing::Responder> r) {
    if (!req.websocket) {
      r->respond(TestApiServer::json(400, status_json(400, "BadRequest", "upgrade required")));
      return;
    }
    std::string chosen;
    for (const auto& p : req.websocket_protocols) {
      if ((p == kExecProtocolV5 && !v4_only) || p == kExecProtocolV4) {
        chosen = p;
        break;
      }
    }
    WebSocketHandlers h;
    h.on_open = script;
    r->upgrade(chosen, h);
  });
}

TEST(ExecProtocol, FramesAndExitStatus) {
  auto f = encode_exec_frame(ExecChannel::kStdout, "hi");
  ASSERT_EQ(f.size(), 3u);
  auto d = decode_exec_frame(f);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->channel, ExecChannel::kStdout);
  EXPECT_EQ(d->payload, "hi");
  EXPECT_FALSE(decode_exec_frame(""));
  EXPECT_EQ(*exit_code_from_status(exec_status_json(0)), 0);
  EXPECT_EQ(*exit_code_from_status(exec_status_json(3)), 3);
  // What a real API server sends for `sh -c 'exit 3'`.
  EXPECT_EQ(*exit_code_from_status(
                R"({"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}})"),
            3);
  auto err = exit_code_from_status(
      R"J({"metadata":{},"status":"Failure","message":"container not found (\"nope\")","reason":"BadRequest","code":400})J");
  ASSERT_FALSE(err);
  EXPECT_NE(err.error().message.find("container not found"), std::string::npos);
  EXPECT_FALSE(exit_code_from_status("not json"));
  EXPECT_FALSE(exit_code_from_status(R"({"status":"Failure","reason":"NonZeroExitCode"})"));
}

TEST(KubeExec, RunsACommandAndCollectsOutputAndExitCode) {
  TestApiServer server;
  serve_exec(server, [](std::shared_ptr<WebSocket> ws) {
    ws->send(encode_exec_frame(ExecChannel::kStdout, "frozen\n"));
    ws->send(encode_exec_frame(ExecChannel::kStderr, R"({"component":"freezer","msg":"ok"})"));
    ws->send(encode_exec_frame(ExecChannel::kError, exec_status_json(0)));
    ws->close();
  });
  auto c = client_for(server);
  auto r = exec(c, request({"/usr/bin/virt-freezer", "--freeze", "--name", "db", "--namespace", "prod"}));
  ASSERT_TRUE(r.status) << r.status.error().describe();
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.succeeded());
  EXPECT_EQ(r.out, "frozen\n");
  EXPECT_EQ(r.err, R"({"component":"freezer","msg":"ok"})");
  EXPECT_EQ(r.protocol, "v5.channel.k8s.io");
  auto req = server.requests().at(0);
  EXPECT_EQ(req.path, "/api/v1/namespaces/prod/pods/virt-launcher-db-x7k2p/exec");
  EXPECT_NE(req.target.find("command=%2Fusr%2Fbin%2Fvirt-freezer&command=--freeze&command=--name&command=db"),
            std::string::npos)
      << req.target;
  EXPECT_NE(req.target.find("container=compute"), std::string::npos);
  EXPECT_EQ(req.authorization, "Bearer test-token");
}

TEST(KubeExec, NonZeroExitCodeIsAResultNotAnError) {
  TestApiServer server;
  serve_exec(server, [](std::shared_ptr<WebSocket> ws) {
    ws->send(encode_exec_frame(ExecChannel::kStderr, "Freezing VMI failed"));
    ws->send(encode_exec_frame(ExecChannel::kError, exec_status_json(1)));
    ws->close();
  });
  auto r = exec(client_for(server), request({"false"}));
  ASSERT_TRUE(r.status);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_FALSE(r.succeeded());
}

TEST(KubeExec, SpeaksV4WhenTheServerOnlyKnowsV4) {
  TestApiServer server;
  serve_exec(
      server,
      [](std::shared_ptr<WebSocket> ws) {
        ws->send(encode_exec_frame(ExecChannel::kError, exec_status_json(0)));
        ws->close();
      },
      true);
  auto r = exec(client_for(server), request({"true"}));
  ASSERT_TRUE(r.status) << r.status.error().describe();
  EXPECT_EQ(r.protocol, "v4.channel.k8s.io");
}

TEST(KubeExec, RefusedExecIsATypedApiError) {
  TestApiServer server;
  server.set_handler([](testing::ServerRequest&& req, std::shared_ptr<testing::Responder> r) {
    if (req.path.find("/missing/") != std::string::npos) {
      r->respond(TestApiServer::json(404, status_json(404, "NotFound", "pods \"missing\" not found")));
    } else {
      r->respond(TestApiServer::json(
          403, status_json(403, "Forbidden", "pods \"p\" is forbidden: cannot create resource \"pods/exec\"")));
    }
  });
  auto c = client_for(server);
  auto req = request({"true"});
  req.pod = "missing";
  auto nf = exec(c, req);
  ASSERT_FALSE(nf.status);
  EXPECT_EQ(nf.status.error().code, Errc::kNotFound);
  EXPECT_NE(nf.status.error().message.find("pods \"missing\" not found"), std::string::npos);
  req.pod = "p";
  auto fb = exec(c, req);
  ASSERT_FALSE(fb.status);
  EXPECT_EQ(fb.status.error().code, Errc::kForbidden);
  EXPECT_NE(fb.status.error().message.find("pods/exec"), std::string::npos);
}

TEST(KubeExec, CommandThatCannotRunIsAnError) {
  TestApiServer server;
  serve_exec(server, [](std::shared_ptr<WebSocket> ws) {
    ws->send(encode_exec_frame(ExecChannel::kError,
                               status_json(400, "BadRequest", "container nope is not valid for pod p")));
    ws->close();
  });
  auto r = exec(client_for(server), request({"true"}));
  ASSERT_FALSE(r.status);
  EXPECT_NE(r.status.error().message.find("container nope is not valid"), std::string::npos);
}

TEST(KubeExec, DroppedStreamBeforeExitStatusIsReported) {
  TestApiServer server;
  serve_exec(server, [](std::shared_ptr<WebSocket> ws) {
    ws->send(encode_exec_frame(ExecChannel::kStdout, "partial"));
    ws->abort();
  });
  auto r = exec(client_for(server), request({"true"}));
  ASSERT_FALSE(r.status);
  EXPECT_EQ(r.status.error().code, Errc::kTransport);
  EXPECT_NE(r.status.error().message.find("before the exit status"), std::string::npos) << r.status.error().message;
  EXPECT_EQ(r.out, "partial");
}

TEST(KubeExec, TimeoutClosesTheStream) {
  TestApiServer server;
  std::atomic<bool> closed{false};
  server.set_handler([&](testing::ServerRequest&&, std::shared_ptr<testing::Responder> r) {
    WebSocketHandlers h;
    h.on_open = [](std::shared_ptr<WebSocket>) {};  // never answers
    h.on_close = [&] {
      closed = true;
      closed.notify_all();
    };
    r->upgrade("v5.channel.k8s.io", h);
  });
  auto req = request({"sleep", "3600"});
  req.timeout = 300ms;
  auto start = std::chrono::steady_clock::now();
  auto r = exec(client_for(server), req);
  ASSERT_FALSE(r.status);
  EXPECT_EQ(r.status.error().code, Errc::kTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  closed.wait(false);  // the server saw the stream go away
  EXPECT_TRUE(closed.load());
}

TEST(KubeExec, CancelStopsARunningExec) {
  TestApiServer server;
  serve_exec(server, [](std::shared_ptr<WebSocket> ws) { ws->send(encode_exec_frame(ExecChannel::kStdout, "started")); });
  std::atomic<bool> started{false};
  ExecObserver obs;
  obs.on_stdout = [&](std::string_view) {
    started = true;
    started.notify_all();
  };
  auto c = client_for(server);
  auto s = start_exec(c, request({"sleep", "3600"}), obs);
  started.wait(false);
  s->cancel();
  auto r = s->wait();
  ASSERT_FALSE(r.status);
  EXPECT_EQ(r.status.error().code, Errc::kCancelled);
}

TEST(KubeExec, StdinIsDeliveredAndClosedOnV5) {
  TestApiServer server;
  server.set_handler([](testing::ServerRequest&& req, std::shared_ptr<testing::Responder> r) {
    EXPECT_EQ(req.query_param("stdin"), "true");
    auto ws_holder = std::make_shared<std::shared_ptr<WebSocket>>();
    WebSocketHandlers h;
    h.on_open = [ws_holder](std::shared_ptr<WebSocket> ws) { *ws_holder = ws; };
    h.on_message = [ws_holder](std::string msg) {
      auto f = decode_exec_frame(msg);
      if (!f || !*ws_holder) return;
      if (f->channel == ExecChannel::kStdin) {
        (*ws_holder)->send(encode_exec_frame(ExecChannel::kStdout, f->payload));  // echo
      } else if (f->channel == ExecChannel::kClose && f->payload == std::string(1, '\0')) {
        (*ws_holder)->send(encode_exec_frame(ExecChannel::kError, exec_status_json(0)));
        (*ws_holder)->close();
      }
    };
    r->upgrade("v5.channel.k8s.io", h);
  });
  auto req = request({"cat"});
  req.stdin = true;
  auto c = client_for(server);
  auto s = start_exec(c, req);
  s->write_stdin("hello ");
  s->write_stdin("world");
  s->close_stdin();
  auto r = s->wait();
  ASSERT_TRUE(r.status) << r.status.error().describe();
  EXPECT_EQ(r.out, "hello world");
}

TEST(KubeExec, OutputIsCappedButCounted) {
  TestApiServer server;
  serve_exec(server, [](std::shared_ptr<WebSocket> ws) {
    for (int i = 0; i < 10; ++i) ws->send(encode_exec_frame(ExecChannel::kStdout, std::string(1000, 'x')));
    ws->send(encode_exec_frame(ExecChannel::kError, exec_status_json(0)));
    ws->close();
  });
  auto req = request({"yes"});
  req.output_limit = 2500;
  auto r = exec(client_for(server), req);
  ASSERT_TRUE(r.status);
  EXPECT_EQ(r.out.size(), 2500u);
  EXPECT_EQ(r.out_bytes, 10000u);
}

TEST(KubeExec, HundredsOfConcurrentExecsShareOneClient) {
  // The server holds every stream open until all of them are open at once, which
  // only happens if the client really runs them concurrently.
  constexpr int kExecs = 200;
  TestApiServer server;
  auto open = std::make_shared<std::vector<std::shared_ptr<WebSocket>>>();
  serve_exec(server, [open](std::shared_ptr<WebSocket> ws) {
    open->push_back(ws);
    if (open->size() == kExecs) {
      for (auto& w : *open) {
        w->send(encode_exec_frame(ExecChannel::kError, exec_status_json(0)));
        w->close();
      }
      open->clear();
    }
  });
  auto c = client_for(server);
  std::vector<std::shared_ptr<ExecSession>> sessions;
  for (int i = 0; i < kExecs; ++i) sessions.push_back(start_exec(c, request({"true"})));
  int good = 0;
  for (auto& s : sessions) good += s->wait().succeeded() ? 1 : 0;
  EXPECT_EQ(good, kExecs);
}

}  // namespace
}  // namespace kvb::kube
