// kube::Client: a small, thread-safe Kubernetes REST client.
//
// Calls block the calling thread; the network work runs on the client's single
// io thread (see detail/runtime.h), so many threads may call at once and many
// execs and watches share one thread. Objects are boost::json objects exactly
// as the API serves them.
//
// Errors: API failures come back as kvb::Error with the HTTP status, the Status
// reason and message (NotFound, AlreadyExists, Conflict, Forbidden, ...).
// Idempotent calls (GET, PUT, DELETE) are retried on 429/5xx/connection loss
// with exponential backoff and jitter, honouring Retry-After, within a budget;
// POST and PATCH are retried only when the server cannot have acted (429, or
// the request never left). A client-side token bucket limits the request rate,
// except for CallOptions::critical calls.
//
// Lifetime: destroying the last reference to a Client cancels its running exec
// sessions and informers (they end with Errc::kCancelled) and waits for them.
#pragma once

#include "common/error.h"
#include "kube/config.h"
#include "kube/http.h"
#include "kube/resource.h"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace kvb::kube {

namespace detail {
class Runtime;
}

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds request_timeout{30'000};
  std::chrono::milliseconds retry_budget{60'000};
  double qps = 200;   // client-side rate limit; <= 0 disables it
  int burst = 400;
};

struct ListOptions {
  std::string label_selector;
  std::string field_selector;
  int64_t page_size = 500;  // the `limit` of each request
  bool all_pages = true;    // follow `continue` until the list is complete
  std::string continue_token;
  std::string resource_version;
};

struct ObjectList {
  boost::json::array items;
  std::string resource_version;  // of the list, for starting a watch
  std::string continue_token;    // non-empty only when all_pages is false
  int pages = 0;
};

enum class PatchType { kMerge, kJson, kStrategicMerge };

struct DeleteOptions {
  std::string propagation_policy;        // "", Foreground, Background, Orphan
  std::string precondition_resource_version;
  std::optional<int64_t> grace_period_seconds;
};

struct ServerVersion {
  std::string git_version;  // "v1.31.0"
  int major = 0;
  int minor = 0;
};

class Client {
 public:
  static Result<std::shared_ptr<Client>> create(const RestConfig& config, ClientOptions options = {});
  ~Client();

  const RestConfig& config() const;
  const std::string& default_namespace() const { return config().namespace_name; }

  Result<boost::json::object> get(const ResourceRef& r, std::string_view ns, std::string_view name,
                                  const CallOptions& o = {});
  Result<ObjectList> list(const ResourceRef& r, std::string_view ns, const ListOptions& lo = {},
                          const CallOptions& o = {});
  Result<boost::json::object> create(const ResourceRef& r, std::string_view ns, const boost::json::object& obj,
                                     const CallOptions& o = {});
  // PUT of the whole object; a stale metadata.resourceVersion gives Errc::kConflict.
  Result<boost::json::object> update(const ResourceRef& r, std::string_view ns, const boost::json::object& obj,
                                     const CallOptions& o = {});
  Result<boost::json::object> update_status(const ResourceRef& r, std::string_view ns,
                                            const boost::json::object& obj, const CallOptions& o = {});
  Result<boost::json::object> patch(const ResourceRef& r, std::string_view ns, std::string_view name,
                                    PatchType type, const boost::json::value& patch,
                                    const CallOptions& o = {}, std::string_view subresource = {});
  // Returns the deleted object (or the Status the server answered with).
  Result<boost::json::object> remove(const ResourceRef& r, std::string_view ns, std::string_view name,
                                     const DeleteOptions& d = {}, const CallOptions& o = {});
  // Any subresource: PUT .../virtualmachineinstances/{name}/freeze with a body, GET .../guestosinfo.
  // Returns the parsed JSON body (null for an empty body).
  Result<boost::json::value> subresource(std::string_view method, const ResourceRef& r, std::string_view ns,
                                         std::string_view name, std::string_view subresource,
                                         const std::optional<boost::json::value>& body = std::nullopt,
                                         const CallOptions& o = {});
  Result<ServerVersion> server_version(const CallOptions& o = {});
  // A raw request (path relative to the server URL). Non-2xx statuses are errors.
  Result<HttpResponse> request(HttpRequest req, const CallOptions& o = {});

  detail::Runtime& runtime() { return *runtime_; }
  std::shared_ptr<detail::Runtime> runtime_ptr() { return runtime_; }

 private:
  explicit Client(std::shared_ptr<detail::Runtime> rt);
  Result<boost::json::object> object_call(HttpRequest req, const CallOptions& o);

  std::shared_ptr<detail::Runtime> runtime_;
};

}  // namespace kvb::kube
