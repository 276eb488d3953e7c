#include "testcluster/api.h"
#include "testcluster/crd_serving.h"
#include "testcluster/responses.h"

#include "common/duration.h"
#include "common/yaml_json.h"
#include "kube/api_status.h"
#include "kube/object.h"
#include "testcluster/csi.h"
#include "testcluster/exec_service.h"
#include "testcluster/port_forward_service.h"
#include "testcluster/json_patch.h"
#include "testcluster/kubevirt.h"

#include <boost/json.hpp>

namespace kvb::testcluster {
namespace json = boost::json;

namespace {




std::vector<std::string> split_path(const std::string& p) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start < p.size()) {
    size_t slash = p.find('/', start);
    if (slash == std::string::npos) slash = p.size();
    if (slash > start) parts.push_back(p.substr(start, slash - start));
    start = slash + 1;
  }
  return parts;
}


std::string verb_of(const ServerRequest& req, const std::string& name) {
  if (req.method == "GET") {
    if (name.empty()) return query_bool(req, "watch") ? "watch" : "list";
    return "get";
  }
  if (req.method == "POST") return "create";
  if (req.method == "PUT") return "update";
  if (req.method == "PATCH") return "patch";
  if (req.method == "DELETE") return name.empty() ? "deletecollection" : "delete";
  return "unknown";
}

bool in(const std::vector<std::string>& list, const std::string& v) {
  return std::find(list.begin(), list.end(), "*") != list.end() || std::find(list.begin(), list.end(), v) != list.end();
}

}  // namespace

Api::Api(Cluster& c) : c_(c) {}

Api::~Api() {
  for (auto& [id, w] : watches_) {
    if (w.bookmark) w.bookmark->cancel();
    if (w.timeout) w.timeout->cancel();
  }
}

void Api::handle(ServerRequest&& req, std::shared_ptr<Responder> r) {
  if (req.path == "/readyz" || req.path == "/healthz" || req.path == "/livez") {
    ServerResponse ok_resp;
    ok_resp.body = "ok";
    ok_resp.headers.emplace_back("Content-Type", "text/plain");
    return r->respond(ok_resp);
  }
  // Authentication: a bearer token, either the admin token or a scenario token.
  std::string auth = req.header("Authorization");
  Caller caller;
  bool known = false;
  if (auth.rfind("Bearer ", 0) == 0) {
    std::string token = auth.substr(7);
    if (token == c_.admin_token()) {
      caller.user = "kubernetes-admin";
      known = true;
    }
    for (const auto& t : c_.scenario().tokens) {
      if (t.token == token) {
        caller.user = t.user;
        caller.token = t.admin ? nullptr : &t;
        known = true;
      }
    }
  }
  if (!known) return r->respond(status_response(401, "Unauthorized", "Unauthorized"));
  auto t0 = std::chrono::steady_clock::now();
  current_.clear();
  serve(req, r, caller);
  handled_[current_.empty() ? "other" : current_].record(std::chrono::steady_clock::now() - t0);
}

bool Api::allowed(const Caller& caller, const std::string& verb, const std::string& resource, const std::string& ns) const {
  if (!caller.token) return true;
  for (const auto& rule : caller.token->rules) {
    if (in(rule.verbs, verb) && in(rule.resources, resource) && (rule.namespaces.empty() || in(rule.namespaces, ns))) {
      return true;
    }
  }
  return false;
}

bool Api::authorize(const Caller& caller, const std::string& verb, const Target& t, const std::shared_ptr<Responder>& r) {
  std::string resource = t.resource->ref.resource + (t.sub.empty() ? "" : "/" + t.sub);
  if (allowed(caller, verb, resource, t.ns)) return true;
  std::string what = t.name.empty() ? t.resource->ref.qualified_name() : t.resource->ref.qualified_name() + " \"" + t.name + "\"";
  std::string scope = t.ns.empty() ? "at the cluster scope" : "in the namespace \"" + t.ns + "\"";
  kube::StatusDetails d;
  d.name = t.name;
  d.group = t.resource->ref.group;
  d.kind = t.resource->ref.resource;
  ServerResponse denied;
  denied.status = 403;
  denied.headers.emplace_back("Content-Type", "application/json");
  denied.body = kube::status_json(403, "Forbidden",
                                  what + " is forbidden: User \"" + caller.user + "\" cannot " + verb + " resource \"" +
                                      resource + "\" in API group \"" + t.resource->ref.group + "\" " + scope,
                                  d);
  r->respond(denied);
  return false;
}

void Api::serve(ServerRequest& req, const std::shared_ptr<Responder>& r, const Caller& caller) {
  if (req.path.rfind("/testcluster/", 0) == 0) {
    if (caller.token) return r->respond(status_response(403, "the test cluster's inspection API needs the admin token"));
    return inspection(req, r);
  }
  if (req.method == "GET" && discovery(req, r)) return;
  auto parts = split_path(req.path);
  if (parts.size() >= 3 && parts[0] == "apis" && parts[1] == "subresources.kubevirt.io") {
    return kubevirt_subresource(req, r, caller, parts);
  }
  std::string err;
  auto t = route(parts, err);
  if (!t) return r->respond(status_response(404, err.empty() ? "the server could not find the requested resource" : err));
  resource_request(req, r, caller, *t);
}

bool Api::discovery(const ServerRequest& req, const std::shared_ptr<Responder>& r) {
  const std::string& p = req.path;
  if (p == "/version" || p == "/version/") {
    auto [major, minor] = parse_version(c_.scenario().kubernetes_version);
    r->respond(json_response(200, json::object{{"major", std::to_string(major)},
                                               {"minor", std::to_string(minor)},
                                               {"gitVersion", "v" + c_.scenario().kubernetes_version},
                                               {"gitCommit", "kvbackup-testcluster"},
                                               {"gitTreeState", "clean"},
                                               {"buildDate", "2026-01-01T00:00:00Z"},
                                               {"goVersion", "go1.22"},
                                               {"compiler", "gc"},
                                               {"platform", "linux/amd64"}}));
    return true;
  }
  if (p == "/api") return r->respond(json_response(200, api_versions_json())), true;
  if (p == "/apis") return r->respond(json_response(200, api_group_list_json(c_.registry()))), true;
  if (p == "/openapi/v3") return r->respond(json_response(200, openapi_index_json(c_.registry()))), true;
  if (p.rfind("/openapi/v3/", 0) == 0) {
    auto doc = openapi_group_version_json(c_.registry(), p.substr(12));
    if (doc) add_crd_openapi(c_.store(), p.substr(12), *doc);
    r->respond(doc ? json_response(200, *doc) : status_response(404, "no OpenAPI document for " + p));
    return true;
  }
  if (p.rfind("/openapi/", 0) == 0) return r->respond(status_response(404, "the test cluster serves /openapi/v3 only")), true;
  auto parts = split_path(p);
  std::optional<json::object> list;
  if (parts.size() == 2 && parts[0] == "api") list = api_resource_list_json(c_.registry(), "", parts[1]);
  else if (parts.size() == 3 && parts[0] == "apis") list = api_resource_list_json(c_.registry(), parts[1], parts[2]);
  else if (parts.size() == 2 && parts[0] == "apis") {
    const json::object groups = api_group_list_json(c_.registry());  // the loop reads into it: keep it alive
    for (const auto& g : groups.at("groups").as_array()) {
      if (kube::str_at(g, {"name"}) == parts[1]) {
        json::object group = g.as_object();
        group["kind"] = "APIGroup";
        group["apiVersion"] = "v1";
        r->respond(json_response(200, group));
        return true;
      }
    }
    return false;
  } else {
    return false;
  }
  if (!list) return false;
  r->respond(json_response(200, *list));
  return true;
}

std::optional<Api::Target> Api::route(const std::vector<std::string>& parts, std::string& err) const {
  std::string group, version;
  size_t i = 0;
  if (parts.size() >= 2 && parts[0] == "api") {
    version = parts[1];
    i = 2;
  } else if (parts.size() >= 3 && parts[0] == "apis") {
    group = parts[1];
    version = parts[2];
    i = 3;
  } else {
    return std::nullopt;
  }
  std::vector<std::string> rest(parts.begin() + static_cast<std::ptrdiff_t>(i), parts.end());
  Target t;
  if (rest.empty()) return std::nullopt;
  if (rest[0] == "namespaces" && rest.size() >= 3 && !(group.empty() && rest.size() == 3 && (rest[2] == "status" || rest[2] == "finalize"))) {
    t.ns = rest[1];
    rest.erase(rest.begin(), rest.begin() + 2);
    t.resource = c_.registry().find(group, version, rest[0]);
    if (!t.resource || !t.resource->ref.namespaced) {
      err = "the server could not find the requested resource";
      return std::nullopt;
    }
  } else {
    t.resource = c_.registry().find(group, version, rest[0]);
    if (!t.resource) return std::nullopt;
  }
  if (rest.size() >= 2) t.name = rest[1];
  if (rest.size() >= 3) t.sub = rest[2];
  if (rest.size() > 3) return std::nullopt;
  if (!t.sub.empty() && std::find(t.resource->subresources.begin(), t.resource->subresources.end(), t.sub) ==
                            t.resource->subresources.end()) {
    return std::nullopt;
  }
  return t;
}

void Api::resource_request(ServerRequest& req, const std::shared_ptr<Responder>& r, const Caller& caller, const Target& t) {
  const ResourceInfo& res = *t.resource;
  // exec and portforward are authorized by the HTTP method, as the API server's
  // RequestInfo does for connect subresources up to 1.34: a WebSocket upgrade
  // (GET) is `get`, a SPDY POST is `create`. (1.35's
  // AuthorizePodWebsocketUpgradeCreatePermission also asks for create.)
  std::string verb = verb_of(req, t.name);
  // Every authenticated user may ask what it may do (system:basic-user).
  if (res.ref.resource == "selfsubjectaccessreviews") return self_subject_access_review(req, r, caller);
  if (!authorize(caller, verb, t, r)) return;
  RequestInfo info{verb, res.ref.resource + (t.sub.empty() ? "" : "/" + t.sub), t.ns, t.name};
  current_ = verb + " " + info.resource;
  ++requests_[current_];
  if (const Fault* f = c_.faults().api_error(info)) {
    if (verb == "watch" && f->code == 410) {
      // An expired watch is an ERROR event in a 200 stream, as the real API server sends it.
      auto stream = r->stream(200, {{"Content-Type", "application/json"}});
      json::object st = json::parse(kube::status_json(410, "Expired", f->message.empty() ? "too old resource version" : f->message)).as_object();
      stream->write(json::serialize(json::object{{"type", "ERROR"}, {"object", st}}) + "\n");
      stream->finish();
      return;
    }
    ServerResponse resp = status_response(f->code, f->message.empty() ? "simulated API error" : f->message);
    if (f->retry_after >= 0) resp.headers.emplace_back("Retry-After", std::to_string(f->retry_after));
    return r->respond(resp);
  }
  if (auto delay = c_.faults().latency(info)) {
    // Serve the same request later, as a slow API server would.
    auto held = std::make_shared<ServerRequest>(std::move(req));
    c_.loop().after(*delay, [this, held, r, t] {
      if (t.sub == "exec") return c_.exec().handle(std::move(*held), r, t.ns, t.name);
      if (t.sub == "portforward") return serve_port_forward(c_, std::move(*held), r, t.ns, t.name);
      crud(*held, r, t);
    });
    return;
  }
  if (t.sub == "exec") return c_.exec().handle(std::move(req), r, t.ns, t.name);
  if (t.sub == "portforward") return serve_port_forward(c_, std::move(req), r, t.ns, t.name);
  if (t.sub == "log") return pod_log(req, r, t);
  if (t.sub == "token") return token_request(req, r, t);
  crud(req, r, t);
}

}  // namespace kvb::testcluster
