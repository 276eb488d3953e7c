// Api: the HTTP face of the test cluster. Routes every request: discovery
// (/version, /api, /apis, their resource lists, /openapi/v3), the generic
// REST verbs over the Store (get, list, watch, create, update, patch, delete,
// deletecollection, status; JSON or Table output), pods/exec, pods/log,
// SelfSubjectAccessReview, KubeVirt's freeze subresources, and the test
// cluster's own inspection and fault endpoints. Authenticates bearer tokens,
// applies RBAC-lite rules, injected API faults and the write validation of
// admission.h to client requests (never to the simulated controllers), and
// answers errors with the real API server's Status bodies.
#pragma once

#include "testcluster/cluster.h"

#include <map>

namespace kvb::testcluster {

class Api {
 public:
  explicit Api(Cluster& c);
  ~Api();
  void handle(ServerRequest&& req, std::shared_ptr<Responder> r);
  // Aborts the watch streams of a resource (fault "watch-disconnect"); returns how many.
  size_t disconnect_watches(const std::string& resource, const std::string& ns);

 private:
  struct Caller {
    std::string user;
    const TokenSpec* token = nullptr;  // nullptr: the admin token
  };
  struct Target {
    const ResourceInfo* resource = nullptr;
    std::string ns, name, sub;
  };
  struct WatchStream {
    std::string resource;
    std::string ns;
    std::shared_ptr<ResponseStream> stream;
    uint64_t store_watch = 0;
    std::shared_ptr<Timer> bookmark;
    std::shared_ptr<Timer> timeout;
  };

  void serve(ServerRequest& req, const std::shared_ptr<Responder>& r, const Caller& caller);
  bool discovery(const ServerRequest& req, const std::shared_ptr<Responder>& r);
  void inspection(ServerRequest& req, const std::shared_ptr<Responder>& r);
  void kubevirt_subresource(ServerRequest& req, const std::shared_ptr<Responder>& r, const Caller& caller,
                            const std::vector<std::string>& parts);
  std::optional<Target> route(const std::vector<std::string>& parts, std::string& error) const;
  void resource_request(ServerRequest& req, const std::shared_ptr<Responder>& r, const Caller& caller, const Target& t);
  void crud(ServerRequest& req, const std::shared_ptr<Responder>& r, const Target& t);
  // api_apply.cpp: PATCH with application/apply-patch+yaml (server-side apply).
  void apply_patch(ServerRequest& req, const std::shared_ptr<Responder>& r, const Target& t);
  // api_more.cpp: lists (JSON or Table), deletecollection, pods/log, SelfSubjectAccessReview.
  void list(ServerRequest& req, const std::shared_ptr<Responder>& r, const Target& t);
  void list_now(const ServerRequest& req, const std::shared_ptr<Responder>& r, const Target& t);
  void delete_collection(ServerRequest& req, const std::shared_ptr<Responder>& r, const Target& t);
  void pod_log(ServerRequest& req, const std::shared_ptr<Responder>& r, const Target& t);
  // POST serviceaccounts/{name}/token: a TokenRequest answered with a token (sa_tokens.h).
  void token_request(ServerRequest& req, const std::shared_ptr<Responder>& r, const Target& t);
  void self_subject_access_review(ServerRequest& req, const std::shared_ptr<Responder>& r, const Caller& caller);
  bool allowed(const Caller& caller, const std::string& verb, const std::string& resource, const std::string& ns) const;
  void watch(ServerRequest& req, const std::shared_ptr<Responder>& r, const Target& t);
  bool authorize(const Caller& caller, const std::string& verb, const Target& t, const std::shared_ptr<Responder>& r);
  void end_watch(uint64_t id);

  Cluster& c_;
  std::map<uint64_t, WatchStream> watches_;
  uint64_t next_watch_ = 1;
  std::map<std::string, uint64_t> requests_;  // "verb resource" -> count (GET /testcluster/v1/stats)
  // Time on the loop thread per request, from the handler's call to its
  // return (controllers and watch fan-out included; an exec's or a watch's
  // later life is not), by the key of requests_.
  std::map<std::string, LatencyStats> handled_;
  std::string current_;  // requests_'s key of the request being handled ("" for others)
};

// Discovery and OpenAPI documents for the registry (discovery.cpp).
boost::json::object api_versions_json();
boost::json::object api_group_list_json(const Registry& r);
std::optional<boost::json::object> api_resource_list_json(const Registry& r, const std::string& group, const std::string& version);
boost::json::object openapi_index_json(const Registry& r);
std::optional<boost::json::object> openapi_group_version_json(const Registry& r, const std::string& gv_path);

}  // namespace kvb::testcluster
