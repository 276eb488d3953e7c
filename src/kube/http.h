// Plain HTTP request/response values and per-call options for the Kubernetes
// client. No networking headers here: this file is included widely.
#pragma once

#include <chrono>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvb::kube {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";
  std::string target;  // path and query, e.g. "/api/v1/pods?limit=500"
  Headers headers;     // Authorization is added by the client, never here
  std::string body;
};

struct HttpResponse {
  int status = 0;
  Headers headers;
  std::string body;

  // Case-insensitive; empty when absent.
  std::string_view header(std::string_view name) const;
};

// How one client call behaves. Zero durations mean "the client's default".
struct CallOptions {
  std::chrono::milliseconds timeout{0};      // one attempt (connect + exchange)
  std::chrono::milliseconds retry_budget{0};  // all attempts together, backoff included
  bool retry = true;                         // retry transient failures (idempotent calls)
  // The caller makes this POST safe to repeat (a create of a named object
  // whose AlreadyExists it recognises as its own): retried like a GET.
  bool repeatable = false;
  // Critical calls (thawing a frozen guest) skip the client-side rate limiter:
  // a backlog of ordinary requests must never lengthen a freeze window.
  bool critical = false;
  std::stop_token stop;                      // cancels the call (Errc::kCancelled)
};

bool is_idempotent(std::string_view method);

}  // namespace kvb::kube
