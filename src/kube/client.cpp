#include "kube/client.h"

#include "kube/detail/runtime.h"
#include "kube/object.h"

#include <boost/json.hpp>

namespace kvb::kube {
namespace json = boost::json;

Client::Client(std::shared_ptr<detail::Runtime> rt) : runtime_(std::move(rt)) {}
Client::~Client() = default;

Result<std::shared_ptr<Client>> Client::create(const RestConfig& config, ClientOptions options) {
  detail::RuntimeOptions ro;
  ro.connect_timeout = options.connect_timeout;
  ro.request_timeout = options.request_timeout;
  ro.retry_budget = options.retry_budget;
  ro.qps = options.qps;
  ro.burst = options.burst;
  auto rt = detail::Runtime::create(config, ro);
  if (!rt) return rt.error();
  return std::shared_ptr<Client>(new Client(std::move(*rt)));
}

const RestConfig& Client::config() const { return runtime_->config(); }

Result<HttpResponse> Client::request(HttpRequest req, const CallOptions& o) {
  return runtime_->run_call(std::move(req), o);
}

namespace {

Result<json::value> parse_body(const HttpResponse& r, std::string_view what) {
  if (r.body.empty()) return json::value(nullptr);
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (ec) return Error(Errc::kParse, std::string(what) + ": response is not valid JSON (" + ec.message() + ")");
  return v;
}

std::string_view content_type(PatchType t) {
  switch (t) {
    case PatchType::kMerge: return "application/merge-patch+json";
    case PatchType::kJson: return "application/json-patch+json";
    case PatchType::kStrategicMerge: return "application/strategic-merge-patch+json";
  }
  return "application/merge-patch+json";
}

HttpRequest json_request(std::string method, std::string target, const json::value* body) {
  HttpRequest req;
  req.method = std::move(method);
  req.target = std::move(target);
  if (body) {
    req.body = json::serialize(*body);
    req.headers.emplace_back("Content-Type", "application/json");
  }
  return req;
}

}  // namespace

Result<json::object> Client::object_call(HttpRequest req, const CallOptions& o) {
  std::string what = runtime_->describe(req.method, req.target);
  auto resp = runtime_->run_call(std::move(req), o);
  if (!resp) return resp.error();
  auto v = parse_body(*resp, what);
  if (!v) return v.error();
  if (!v->is_object()) return Error(Errc::kParse, what + ": response is not a JSON object");
  return std::move(v->get_object());
}

Result<json::object> Client::get(const ResourceRef& r, std::string_view ns, std::string_view name,
                                 const CallOptions& o) {
  return object_call(json_request("GET", r.object_path(ns, name), nullptr), o);
}

Result<ObjectList> Client::list(const ResourceRef& r, std::string_view ns, const ListOptions& lo,
                                const CallOptions& o) {
  ObjectList out;
  std::string cont = lo.continue_token;
  for (;;) {
    std::vector<std::pair<std::string, std::string>> q;
    if (!lo.label_selector.empty()) q.emplace_back("labelSelector", lo.label_selector);
    if (!lo.field_selector.empty()) q.emplace_back("fieldSelector", lo.field_selector);
    if (lo.page_size > 0) q.emplace_back("limit", std::to_string(lo.page_size));
    if (!cont.empty()) q.emplace_back("continue", cont);
    if (!lo.resource_version.empty() && cont.empty()) q.emplace_back("resourceVersion", lo.resource_version);
    auto page = object_call(json_request("GET", r.collection_path(ns) + query_string(q), nullptr), o);
    if (!page) {
      // An expired continue token (410) restarts the list from scratch, as client-go's pager does.
      if (page.error().code == Errc::kGone && !cont.empty() && lo.continue_token.empty()) {
        out = ObjectList{};
        cont.clear();
        continue;
      }
      return page.error();
    }
    ++out.pages;
    if (auto* items = page->if_contains("items"); items && items->is_array()) {
      auto& arr = items->get_array();
      if (out.items.empty()) {
        out.items = std::move(arr);
      } else {
        for (auto& item : arr) out.items.push_back(std::move(item));
      }
    }
    json::value pv(std::move(*page));
    out.resource_version = std::string(str_at(pv, {"metadata", "resourceVersion"}));
    cont = std::string(str_at(pv, {"metadata", "continue"}));
    if (cont.empty() || !lo.all_pages) {
      out.continue_token = cont;
      return out;
    }
  }
}

Result<json::object> Client::create(const ResourceRef& r, std::string_view ns, const json::object& obj,
                                    const CallOptions& o) {
  json::value body = obj;
  return object_call(json_request("POST", r.collection_path(ns), &body), o);
}

Result<json::object> Client::update(const ResourceRef& r, std::string_view ns, const json::object& obj,
                                    const CallOptions& o) {
  json::value body = obj;
  return object_call(json_request("PUT", r.object_path(ns, name_of(body)), &body), o);
}

Result<json::object> Client::update_status(const ResourceRef& r, std::string_view ns, const json::object& obj,
                                           const CallOptions& o) {
  json::value body = obj;
  return object_call(json_request("PUT", r.subresource_path(ns, name_of(body), "status"), &body), o);
}

Result<json::object> Client::patch(const ResourceRef& r, std::string_view ns, std::string_view name, PatchType type,
                                   const json::value& patch, const CallOptions& o, std::string_view subresource) {
  HttpRequest req;
  req.method = "PATCH";
  req.target = subresource.empty() ? r.object_path(ns, name) : r.subresource_path(ns, name, subresource);
  req.body = json::serialize(patch);
  req.headers.emplace_back("Content-Type", std::string(content_type(type)));
  return object_call(std::move(req), o);
}

Result<json::object> Client::remove(const ResourceRef& r, std::string_view ns, std::string_view name,
                                    const DeleteOptions& d, const CallOptions& o) {
  json::object opts{{"kind", "DeleteOptions"}, {"apiVersion", "v1"}};
  if (!d.propagation_policy.empty()) opts["propagationPolicy"] = d.propagation_policy;
  if (!d.precondition_resource_version.empty()) {
    opts["preconditions"] = json::object{{"resourceVersion", d.precondition_resource_version}};
  }
  if (d.grace_period_seconds) opts["gracePeriodSeconds"] = *d.grace_period_seconds;
  json::value body = std::move(opts);
  return object_call(json_request("DELETE", r.object_path(ns, name), &body), o);
}

Result<json::value> Client::subresource(std::string_view method, const ResourceRef& r, std::string_view ns,
                                        std::string_view name, std::string_view sub,
                                        const std::optional<json::value>& body, const CallOptions& o) {
  HttpRequest req = json_request(std::string(method), r.subresource_path(ns, name, sub), body ? &*body : nullptr);
  std::string what = runtime_->describe(req.method, req.target);
  auto resp = runtime_->run_call(std::move(req), o);
  if (!resp) return resp.error();
  return parse_body(*resp, what);
}

Result<ServerVersion> Client::server_version(const CallOptions& o) {
  auto obj = object_call(json_request("GET", "/version", nullptr), o);
  if (!obj) return obj.error();
  json::value v(std::move(*obj));
  ServerVersion sv;
  sv.git_version = std::string(str_at(v, {"gitVersion"}));
  auto num = [](std::string_view s) {
    int n = 0;
    for (char c : s) {
      if (c < '0' || c > '9') break;
      n = n * 10 + (c - '0');
    }
    return n;
  };
  sv.major = num(str_at(v, {"major"}));
  sv.minor = num(str_at(v, {"minor"}));
  return sv;
}

}  // namespace kvb::kube
