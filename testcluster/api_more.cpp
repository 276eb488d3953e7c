// The rest of the generic API: lists (JSON or Table, with the supported field
// selectors, continue pages and a resourceVersion the store has not reached),
// deletecollection, pods/log and SelfSubjectAccessReview.
#include "common/time.h"
#include "kube/api_status.h"
#include "kube/object.h"
#include "testcluster/admission.h"
#include "testcluster/api.h"
#include "testcluster/responses.h"
#include "testcluster/tables.h"

#include <boost/json.hpp>

namespace kvb::testcluster {
namespace json = boost::json;
using namespace std::chrono_literals;

void Api::list(ServerRequest& req, const std::shared_ptr<Responder>& r, const Target& t) {
  std::string rv_text = req.query_param("resourceVersion");
  int64_t want = rv_text.empty() ? 0 : std::atoll(rv_text.c_str());
  if (want > c_.store().resource_version()) {
    // The watch cache waits up to 3 s to reach a resourceVersion it has not
    // seen, then answers 504 "Too large resource version" (cacher.go,
    // waitUntilFreshAndBlock; storage.NewTooLargeResourceVersionError).
    auto held = std::make_shared<ServerRequest>(req);
    c_.loop().after(3s, [this, held, r, t, want] {
      int64_t now = c_.store().resource_version();
      if (now >= want) return list_now(*held, r, t);
      kube::StatusDetails d;
      d.causes.emplace_back("ResourceVersionTooLarge", "Too large resource version");
      ServerResponse resp;
      resp.status = 504;
      resp.headers.emplace_back("Content-Type", "application/json");
      json::object st = json::parse(kube::status_json(504, "Timeout", "Too large resource version: " + std::to_string(want) +
                                                                           ", current: " + std::to_string(now), d))
                            .as_object();
      st["details"].as_object()["retryAfterSeconds"] = 1;
      resp.body = json::serialize(st);
      r->respond(resp);
    });
    return;
  }
  list_now(req, r, t);
}

void Api::list_now(const ServerRequest& req, const std::shared_ptr<Responder>& r, const Target& t) {
  const ResourceInfo& res = *t.resource;
  auto ls = kube::LabelSelector::parse(req.query_param("labelSelector"));
  if (!ls) return r->respond(status_response(400, ls.error().message));
  auto fs = kube::FieldSelector::parse(req.query_param("fieldSelector"));
  if (!fs) return r->respond(status_response(400, fs.error().message));
  if (auto st = check_field_selector(res, *fs); !st) return r->respond(error_response(st.error()));
  int64_t limit = std::atoll(req.query_param("limit").c_str());
  auto page = c_.store().list(res, t.ns, *ls, *fs, limit, req.query_param("continue"));
  if (!page) return r->respond(error_response(page.error()));
  std::string rv = std::to_string(page->rv);
  if (wants_table(req)) {
    return r->respond(json_response(200, to_table(res, page->items, rv, page->continue_token, req.query_param("includeObject"))));
  }
  json::array items;
  for (auto& o : page->items) items.push_back(std::move(o));
  json::object meta{{"resourceVersion", rv}};
  if (!page->continue_token.empty()) meta["continue"] = page->continue_token;
  r->respond(json_response(200, json::object{{"kind", res.ref.kind + "List"},
                                             {"apiVersion", res.ref.api_version()},
                                             {"metadata", meta},
                                             {"items", items}}));
}

void Api::delete_collection(ServerRequest& req, const std::shared_ptr<Responder>& r, const Target& t) {
  const ResourceInfo& res = *t.resource;
  auto ls = kube::LabelSelector::parse(req.query_param("labelSelector"));
  if (!ls) return r->respond(status_response(400, ls.error().message));
  auto fs = kube::FieldSelector::parse(req.query_param("fieldSelector"));
  if (!fs) return r->respond(status_response(400, fs.error().message));
  if (auto st = check_field_selector(res, *fs); !st) return r->respond(error_response(st.error()));
  std::string propagation = req.query_param("propagationPolicy");
  bool dry = req.query_param("dryRun") == "All";
  if (!req.body.empty()) {
    if (auto body = parse_request_body(req)) {
      if (propagation.empty()) propagation = std::string(kube::str_at(*body, {"propagationPolicy"}));
      if (const auto* d = kube::array_at(*body, {"dryRun"})) {
        for (const auto& v : *d) dry = dry || (v.is_string() && v.as_string() == "All");
      }
    }
  }
  auto page = c_.store().list(res, t.ns, *ls, *fs, 0, {});
  if (!page) return r->respond(error_response(page.error()));
  json::array items;
  for (const auto& o : page->items) {
    if (dry) {
      items.push_back(o);
      continue;
    }
    auto gone = c_.store().remove(res, std::string(kube::str_at(o, {"metadata", "namespace"})),
                                  std::string(kube::str_at(o, {"metadata", "name"})), {}, propagation);
    if (gone) items.push_back(*gone);
  }
  r->respond(json_response(200, json::object{{"kind", res.ref.kind + "List"},
                                             {"apiVersion", res.ref.api_version()},
                                             {"metadata", json::object{{"resourceVersion", std::to_string(c_.store().resource_version())}}},
                                             {"items", items}}));
}

void Api::token_request(ServerRequest& req, const std::shared_ptr<Responder>& r, const Target& t) {
  if (req.method != "POST") return r->respond(status_response(405, "the server does not allow this method on the requested resource"));
  auto sa = c_.store().get(*t.resource, t.ns, t.name);
  if (!sa) return r->respond(error_response(sa.error()));
  auto body = parse_request_body(req);
  if (!body) return r->respond(error_response(body.error()));
  if (!body->is_object()) return r->respond(status_response(400, "the request body must be a JSON object"));
  ServiceAccountTokens::Holder h{t.ns, t.name, {}, {}};
  if (const auto* a = kube::array_at(*body, {"spec", "audiences"})) {
    for (const auto& v : *a) {
      if (v.is_string()) h.audiences.emplace_back(v.as_string());
    }
  }
  if (h.audiences.empty()) h.audiences.emplace_back("https://kubernetes.default.svc");  // the API server's own audience
  int64_t seconds = 3600;
  if (const auto* e = body->as_object().if_contains("spec"); e && e->is_object()) {
    if (const auto* s = e->as_object().if_contains("expirationSeconds"); s && s->is_int64()) seconds = s->as_int64();
  }
  if (seconds < 600) return r->respond(status_response(422, "TokenRequest.authentication.k8s.io is invalid: spec.expirationSeconds: Invalid value: may not specify a duration less than 10 minutes"));
  h.expires = std::chrono::system_clock::now() + std::chrono::seconds(seconds);
  const WallTime expires_at = h.expires;
  json::array audiences;
  for (const auto& a : h.audiences) audiences.emplace_back(a);
  std::string token = c_.sa_tokens().issue(std::move(h));
  return r->respond(json_response(201, json::object{{"apiVersion", "authentication.k8s.io/v1"},
                                                    {"kind", "TokenRequest"},
                                                    {"metadata", json::object{{"name", t.name}, {"namespace", t.ns}}},
                                                    {"spec", json::object{{"audiences", audiences}, {"expirationSeconds", seconds}}},
                                                    {"status", json::object{{"token", token}, {"expirationTimestamp", format_rfc3339(expires_at)}}}}));
}

void Api::pod_log(ServerRequest& req, const std::shared_ptr<Responder>& r, const Target& t) {
  if (req.method != "GET") return r->respond(status_response(405, "the server does not allow this method on the requested resource"));
  const Object* pod = c_.store().find(*t.resource, t.ns, t.name);
  if (!pod) return r->respond(status_response(404, "pods \"" + t.name + "\" not found"));
  std::vector<std::string> names;
  if (const auto* cs = kube::array_at(*pod, {"spec", "containers"})) {
    for (const auto& c : *cs) names.emplace_back(kube::str_at(c, {"name"}));
  }
  std::string container = req.query_param("container");
  if (container.empty()) {
    if (names.size() != 1) {
      // pkg/registry/core/pod/strategy.go: LogLocation.
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : " ") + n;
      return r->respond(status_response(400, "a container name must be specified for pod " + t.name +
                                                 ", choose one of: [" + list + "]"));
    }
    container = names.front();
  } else if (std::find(names.begin(), names.end(), container) == names.end()) {
    return r->respond(status_response(400, "container " + container + " is not valid for pod " + t.name));
  }
  std::string text;
  for (const auto& ns : c_.scenario().namespaces) {
    if (ns.name != t.ns) continue;
    for (const auto& p : ns.pods) {
      if (p.name != t.name) continue;
      for (const auto& c : p.containers) {
        if (c.name == container) text = c.log;
      }
    }
  }
  if (kube::label_of(*pod, "kubevirt.io") == "virt-launcher" && container == "compute") {
    std::string ts = std::string(kube::str_at(*pod, {"metadata", "creationTimestamp"}));
    std::string vmi(kube::annotation_of(*pod, "kubevirt.io/domain"));
    for (const char* msg : {"Collected all requested hook sidecar sockets", "Marked as ready", "Domain started."}) {
      text += "{\"component\":\"virt-launcher\",\"level\":\"info\",\"msg\":\"" + std::string(msg) + "\",\"name\":\"" + vmi +
              "\",\"namespace\":\"" + t.ns + "\",\"timestamp\":\"" + ts + "\"}\n";
    }
  }
  if (query_bool(req, "timestamps")) {
    std::string ts = std::string(kube::str_at(*pod, {"metadata", "creationTimestamp"}));
    std::string stamped;
    size_t start = 0;
    while (start < text.size()) {
      size_t nl = text.find('\n', start);
      size_t end = nl == std::string::npos ? text.size() : nl + 1;
      stamped += ts + " " + text.substr(start, end - start);
      start = end;
    }
    text = stamped;
  }
  ServerResponse resp;
  resp.body = text;
  resp.headers.emplace_back("Content-Type", "text/plain");
  r->respond(resp);
}

void Api::self_subject_access_review(ServerRequest& req, const std::shared_ptr<Responder>& r, const Caller& caller) {
  if (req.method != "POST") return r->respond(status_response(405, "the server does not allow this method on the requested resource"));
  auto body = parse_request_body(req);
  if (!body) return r->respond(error_response(body.error()));
  if (!body->is_object()) return r->respond(status_response(400, "the request body must be a JSON object"));
  json::object review = body->as_object();
  const auto* attrs = kube::object_at(review, {"spec", "resourceAttributes"});
  bool allowed_now;
  std::string reason;
  if (attrs) {
    std::string resource(kube::str_at(*attrs, {"resource"}));
    std::string sub(kube::str_at(*attrs, {"subresource"}));
    if (!sub.empty()) resource += "/" + sub;
    allowed_now = allowed(caller, std::string(kube::str_at(*attrs, {"verb"})), resource, std::string(kube::str_at(*attrs, {"namespace"})));
  } else {
    // nonResourceAttributes: discovery and health paths are open to everyone.
    allowed_now = !caller.token || kube::str_at(review, {"spec", "nonResourceAttributes", "verb"}) == "get";
  }
  if (allowed_now && !caller.token) reason = "the admin token is bound to cluster-admin";
  review["apiVersion"] = "authorization.k8s.io/v1";
  review["kind"] = "SelfSubjectAccessReview";
  auto& meta = review["metadata"];
  if (!meta.is_object()) meta = json::object();
  meta.as_object()["creationTimestamp"] = nullptr;
  json::object status{{"allowed", allowed_now}};
  if (!reason.empty()) status["reason"] = reason;
  review["status"] = status;
  r->respond(json_response(201, review));
}

}  // namespace kvb::testcluster
