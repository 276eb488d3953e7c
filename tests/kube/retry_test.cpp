#include "kube/api_status.h"
#include "kube/backoff.h"
#include "kube/client.h"
#include "kube/rate_limiter.h"
#include "tests/support/test_api_server.h"

#include <gtest/gtest.h>

#include <atomic>

namespace kvb::kube {
namespace {

using testing::TestApiServer;
using namespace std::chrono_literals;

TEST(Backoff, GrowsExponentiallyWithJitterWithinBounds) {
  BackoffPolicy p{100ms, 1000ms, 2.0, 10};
  Backoff b(p, 60s, 42);
  Error e(Errc::kInternal, "x");
  for (int attempt = 1; attempt <= 6; ++attempt) {
    auto d = b.next_delay(e, attempt, 0ms);
    ASSERT_TRUE(d);
    auto cap = std::min<int64_t>(100 * (1 << (attempt - 1)), 1000);
    EXPECT_GE(d->count(), cap / 2) << attempt;
    EXPECT_LE(d->count(), cap) << attempt;
  }
}

TEST(Backoff, HonoursRetryAfterBudgetAttemptsAndPermanentErrors) {
  Backoff b(BackoffPolicy{100ms, 1s, 2.0, 3}, 10s, 1);
  Error throttled(Errc::kTooManyRequests, "slow down");
  throttled.retry_after = 2s;
  EXPECT_EQ(*b.next_delay(throttled, 1, 0ms), 2s);
  EXPECT_FALSE(b.next_delay(throttled, 1, 9s)) << "would exceed the budget";
  EXPECT_FALSE(b.next_delay(Error(Errc::kInternal, ""), 3, 0ms)) << "attempts exhausted";
  EXPECT_FALSE(b.next_delay(Error(Errc::kNotFound, ""), 1, 0ms)) << "not transient";
  EXPECT_FALSE(b.next_delay(Error(Errc::kForbidden, ""), 1, 0ms));
  EXPECT_TRUE(b.next_delay(Error(Errc::kTransport, ""), 1, 0ms));
}

TEST(RateLimiter, BurstThenSteadyRate) {
  RateLimiter rl(10, 5);  // 10 QPS, burst 5
  auto t0 = RateLimiter::Clock::time_point{} + 1h;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(rl.reserve(t0).count(), 0) << i;
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(rl.reserve(t0)), 100ms);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(rl.reserve(t0)), 200ms);
  // A second later the debt (2 tokens) is repaid and 8 more accrued, capped at burst 5.
  auto t1 = t0 + 1s;
  int free = 0;
  while (rl.reserve(t1).count() == 0) ++free;
  EXPECT_EQ(free, 5);
}

TEST(RateLimiter, DisabledWithZeroQps) {
  RateLimiter rl(0, 1);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(rl.reserve().count(), 0);
}

std::shared_ptr<Client> client_for(const TestApiServer& s, ClientOptions o = {}) {
  auto c = Client::create(s.rest_config(), o);
  if (!c) throw std::runtime_error(c.error().describe());
  return *c;
}

TEST(KubeRetry, TooManyRequestsHonoursRetryAfterThenSucceeds) {
  TestApiServer server;
  std::atomic<int> calls{0};
  server.set_handler([&](testing::ServerRequest&&, std::shared_ptr<testing::Responder> r) {
    if (calls++ < 2) {
      auto resp = TestApiServer::json(429, status_json(429, "TooManyRequests", "slow down"));
      resp.headers.emplace_back("Retry-After", "1");
      r->respond(resp);
    } else {
      r->respond(TestApiServer::json(200, R"({"metadata":{"name":"ok"}})"));
    }
  });
  auto c = client_for(server);
  auto start = std::chrono::steady_clock::now();
  auto r = c->get(resources::kPods, "ns", "ok");
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(calls.load(), 3);
  EXPECT_GE(took, 2s) << "Retry-After: 1 twice";
}

TEST(KubeRetry, ServerErrorsAreRetriedForGetButNotForPost) {
  TestApiServer server;
  std::atomic<int> gets{0}, posts{0};
  server.set_handler([&](testing::ServerRequest&& req, std::shared_ptr<testing::Responder> r) {
    int n = req.method == "GET" ? gets++ : posts++;
    if (n < 2) {
      r->respond(TestApiServer::json(500, status_json(500, "InternalError", "etcd hiccup")));
    } else {
      r->respond(TestApiServer::json(200, R"({"metadata":{"name":"ok"}})"));
    }
  });
  auto c = client_for(server);
  ASSERT_TRUE(c->get(resources::kPods, "ns", "ok"));
  EXPECT_EQ(gets.load(), 3);
  auto created = c->create(resources::kPods, "ns", boost::json::object{});
  ASSERT_FALSE(created);
  EXPECT_EQ(created.error().code, Errc::kInternal);
  EXPECT_EQ(posts.load(), 1) << "a POST that may have been processed is not repeated";
}

TEST(KubeRetry, PostIsRetriedOnTooManyRequests) {
  TestApiServer server;
  std::atomic<int> posts{0};
  server.set_handler([&](testing::ServerRequest&&, std::shared_ptr<testing::Responder> r) {
    if (posts++ == 0) {
      r->respond(TestApiServer::json(429, status_json(429, "TooManyRequests", "throttled")));
    } else {
      r->respond(TestApiServer::json(201, R"({"metadata":{"name":"created"}})"));
    }
  });
  auto c = client_for(server);
  ASSERT_TRUE(c->create(resources::kPods, "ns", boost::json::object{}));
  EXPECT_EQ(posts.load(), 2);
}

TEST(KubeRetry, BudgetBoundsTheTotalTime) {
  TestApiServer server;
  std::atomic<int> calls{0};
  server.set_handler([&](testing::ServerRequest&&, std::shared_ptr<testing::Responder> r) {
    ++calls;
    r->respond(TestApiServer::json(503, status_json(503, "ServiceUnavailable", "down")));
  });
  auto c = client_for(server);
  CallOptions o;
  o.retry_budget = 800ms;
  auto start = std::chrono::steady_clock::now();
  auto r = c->get(resources::kPods, "ns", "x", o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kServiceUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_GE(calls.load(), 2);
  EXPECT_NE(r.error().message.find("attempts"), std::string::npos) << r.error().message;
}

TEST(KubeRetry, DroppedConnectionIsRetriedForIdempotentCalls) {
  TestApiServer server;
  std::atomic<int> calls{0};
  server.set_handler([&](testing::ServerRequest&&, std::shared_ptr<testing::Responder> r) {
    if (calls++ == 0) {
      r->drop();
    } else {
      r->respond(TestApiServer::json(200, R"({"metadata":{"name":"ok"}})"));
    }
  });
  auto c = client_for(server);
  auto r = c->get(resources::kPods, "ns", "ok");
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(calls.load(), 2);
}

TEST(KubeRetry, UnauthorizedRefreshesARotatedTokenFileOnce) {
  TestApiServer server;
  testing::TempDir dir;
  dir.write("token", "old-token");
  server.set_handler([&](testing::ServerRequest&& req, std::shared_ptr<testing::Responder> r) {
    if (req.header("Authorization") == "Bearer new-token-rotated") {
      r->respond(TestApiServer::json(200, R"({"metadata":{"name":"ok"}})"));
    } else {
      r->respond(TestApiServer::json(401, status_json(401, "Unauthorized", "Unauthorized")));
    }
  });
  auto rc = server.rest_config();
  rc.user.token = Secret();
  rc.user.token_file = dir / "token";
  auto c = Client::create(rc);
  ASSERT_TRUE(c);
  auto first = (*c)->get(resources::kPods, "ns", "ok");
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error().code, Errc::kUnauthorized);
  EXPECT_EQ(first.error().describe().find("old-token"), std::string::npos) << "token leaked into the error";
  dir.write("token", "new-token-rotated");
  auto second = (*c)->get(resources::kPods, "ns", "ok");
  ASSERT_TRUE(second) << second.error().describe();
}

TEST(KubeRetry, RateLimiterSpacesRequestsButCriticalCallsSkipIt) {
  TestApiServer server;
  server.set_handler([](testing::ServerRequest&&, std::shared_ptr<testing::Responder> r) {
    r->respond(TestApiServer::json(200, R"({"metadata":{"name":"ok"}})"));
  });
  ClientOptions o;
  o.qps = 20;
  o.burst = 1;
  auto c = client_for(server, o);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(c->get(resources::kPods, "ns", "ok"));
  auto limited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(limited, 240ms) << "5 waits of 50 ms";

  CallOptions critical;
  critical.critical = true;
  start = std::chrono::steady_clock::now();
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(c->get(resources::kPods, "ns", "ok", critical));
  EXPECT_LT(std::chrono::steady_clock::now() - start, limited);
}

}  // namespace
}  // namespace kvb::kube
