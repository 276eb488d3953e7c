// The generic REST verbs of the test cluster's API over the Store, watch
// streams, KubeVirt's subresources and the /testcluster/v1 endpoints.
#include "common/duration.h"
#include "common/yaml_json.h"
#include "kube/api_status.h"
#include "kube/object.h"
#include "testcluster/admission.h"
#include "testcluster/api.h"
#include "testcluster/cdi_upload.h"
#include "testcluster/crd_serving.h"
#include "testcluster/tables.h"
#include "testcluster/openapi_builtin.h"
#include "testcluster/responses.h"
#include "testcluster/server_side_apply.h"
#include "testcluster/csi.h"
#include "testcluster/export/export_controller.h"
#include "testcluster/json_patch.h"
#include "testcluster/kubevirt.h"

#include <boost/json.hpp>

#include <ctime>
#include <set>

namespace kvb::testcluster {
namespace json = boost::json;

namespace {





std::string line(const json::object& o) { return json::serialize(o) + "\n"; }

}  // namespace

namespace {
// dryRun=All on the query (create, update, patch, delete) or in the DeleteOptions body.
bool dry_run(const ServerRequest& req, const json::value* delete_options = nullptr) {
  for (const auto& v : req.query_params("dryRun")) {
    if (v == "All") return true;
  }
  if (const auto* list = delete_options ? kube::array_at(*delete_options, {"dryRun"}) : nullptr) {
    for (const auto& v : *list) {
      if (v.is_string() && v.as_string() == "All") return true;
    }
  }
  return false;
}

bool strict_fields(const ServerRequest& req) { return req.query_param("fieldValidation") == "Strict"; }

// metadata.managedFields of a client's create, update or patch (an Update operation).
void record_manager(const ServerRequest& req, const ResourceInfo& res, const Object* old, json::object& next) {
  record_update(res, old, next, default_manager(req.query_param("fieldManager"), req.header("User-Agent")), WallClock::now());
}

// fieldValidation Warn (the default) and Ignore: unknown fields are dropped, as decoding into the
// kind's type drops them; Warn answers a Warning header for each (Strict was refused by validate_write).
std::vector<std::string> prune_unknown(const ServerRequest& req, const ResourceInfo& res, json::object& obj) {
  auto dropped = unknown_fields(res, obj, true);
  if (req.query_param("fieldValidation") == "Ignore") dropped.clear();
  return dropped;
}

ServerResponse warned(ServerResponse resp, const std::vector<std::string>& unknown) {
  for (const auto& f : unknown) {
    resp.headers.emplace_back("Warning", "299 - " + json::serialize(json::string("unknown field \"" + f + "\"")));
  }
  return resp;
}

Error invalid_patch_options(const std::string& detail) {
  // apimachinery ValidatePatchOptions, answered by patch.go as an Invalid PatchOptions.
  Error e(Errc::kInvalid, "PatchOptions.meta.k8s.io \"\" is invalid: " + detail);
  e.http_status = 422;
  e.reason = "Invalid";
  return e;
}

ServerResponse object_response(int code, const ServerRequest& req, const ResourceInfo& res, const json::object& o, int64_t rv) {
  if (wants_table(req)) {
    return json_response(code, to_table(res, {o}, std::to_string(rv), {}, req.query_param("includeObject")));
  }
  return json_response(code, o);
}
}  // namespace

void Api::crud(ServerRequest& req, const std::shared_ptr<Responder>& plain, const Target& t) {
  const ResourceInfo& res = *t.resource;
  Store& store = c_.store();
  // Custom resources: served at the requested version, with their CRD's printer columns and Warning headers.
  const std::shared_ptr<Responder> r = custom_responder(store, res, plain);
  if (req.method == "GET" && t.name.empty()) {
    if (query_bool(req, "watch")) return watch(req, r, t);
    return list(req, r, t);
  }
  if (req.method == "GET") {
    auto o = store.get(res, t.ns, t.name);
    return r->respond(o ? object_response(200, req, res, *o, store.resource_version()) : error_response(o.error()));
  }
  if (req.method == "DELETE" && t.name.empty()) return delete_collection(req, r, t);
  if (req.method == "POST" && t.name.empty()) {
    auto body = parse_request_body(req);
    if (!body) return r->respond(error_response(body.error()));
    if (!body->is_object()) return r->respond(status_response(400, "the request body must be a JSON object"));
    json::object obj = body->as_object();
    if (auto st = validate_write(res, obj, nullptr, strict_fields(req)); !st) return r->respond(error_response(st.error()));
    if (auto st = admit_custom_write(store, res, req, obj, nullptr, false, *r); !st) return r->respond(error_response(st.error()));
    // PrepareForCreate of a resource with a status subresource drops the client's status.
    if (res.has_status) obj.erase("status");
    auto unknown = prune_unknown(req, res, obj);
    record_manager(req, res, nullptr, obj);
    if (dry_run(req)) {
      obj["apiVersion"] = res.ref.api_version();
      obj["kind"] = res.ref.kind;
      return r->respond(warned(json_response(201, obj), unknown));
    }
    // CDI's aggregated API: answered with a token, stored nowhere.
    if (res.ref.group == testcluster::res::kUploadTokenRequests.group &&
        res.ref.resource == testcluster::res::kUploadTokenRequests.resource) {
      auto* cdi = find_cdi_upload(c_);
      return r->respond(cdi ? cdi->token_request(t.ns, obj) : status_response(503, "the CDI apiserver is not running"));
    }
    auto created = store.create(res, t.ns, std::move(obj));
    return r->respond(created ? warned(json_response(201, *created), unknown) : error_response(created.error()));
  }
  if (req.method == "PUT" && !t.name.empty()) {
    auto body = parse_request_body(req);
    if (!body) return r->respond(error_response(body.error()));
    if (!body->is_object()) return r->respond(status_response(400, "the request body must be a JSON object"));
    if (kube::name_of(*body) != t.name) {
      return r->respond(status_response(400, "the name of the object (" + std::string(kube::name_of(*body)) +
                                                 ") does not match the name on the URL (" + t.name + ")"));
    }
    auto cur = store.get(res, t.ns, t.name);
    if (!cur) return r->respond(error_response(cur.error()));
    if (auto st = validate_write(res, body->as_object(), &*cur, strict_fields(req)); !st) {
      return r->respond(error_response(st.error()));
    }
    if (auto st = admit_custom_write(store, res, req, body->as_object(), &*cur, t.sub == "status", *r); !st) {
      return r->respond(error_response(st.error()));
    }
    json::object next = body->as_object();
    auto unknown = prune_unknown(req, res, next);
    if (t.sub.empty()) record_manager(req, res, &*cur, next);
    if (dry_run(req)) return r->respond(warned(json_response(200, next), unknown));
    auto updated = store.update(res, t.ns, std::move(next), t.sub == "status" ? UpdateMode::kStatus : UpdateMode::kMain);
    return r->respond(updated ? warned(json_response(200, *updated), unknown) : error_response(updated.error()));
  }
  if (req.method == "PATCH" && !t.name.empty()) {
    bool apply = req.header("Content-Type").find("apply-patch") != std::string::npos;
    if (apply && req.query_param("fieldManager").empty()) {
      return r->respond(error_response(invalid_patch_options("fieldManager: Required value: is required for apply patch")));
    }
    if (!apply && req.query.count("force")) {
      return r->respond(error_response(invalid_patch_options("force: Forbidden: may not be specified for non-apply patch")));
    }
    if (apply) return apply_patch(req, r, t);
    auto cur = store.get(res, t.ns, t.name);
    if (!cur) return r->respond(error_response(cur.error()));
    auto patch = parse_request_body(req);
    if (!patch) return r->respond(error_response(patch.error()));
    std::string ct = req.header("Content-Type");
    json::value target(*cur);
    if (ct.find("json-patch") != std::string::npos) {
      if (auto st = apply_json_patch(target, *patch); !st) return r->respond(status_response(422, st.error().message, "Invalid"));
    } else if (ct.find("strategic-merge-patch") != std::string::npos && is_builtin(res)) {
      apply_strategic_merge_patch(target, *patch);
    } else if (ct.find("merge-patch") != std::string::npos && ct.find("strategic") == std::string::npos) {
      apply_merge_patch(target, *patch);
    } else {
      // Custom resources have no strategic merge patch (apiextensions-apiserver).
      std::string accepted = is_builtin(res) ? "application/json-patch+json, application/merge-patch+json, "
                                               "application/strategic-merge-patch+json, application/apply-patch+yaml"
                                             : "application/json-patch+json, application/merge-patch+json, "
                                               "application/apply-patch+yaml";
      return r->respond(status_response(415, "the body of the request was in an unknown format - accepted media types include: " + accepted,
                                        "UnsupportedMediaType"));
    }
    if (!target.is_object()) return r->respond(status_response(422, "the patch must keep the object an object", "Invalid"));
    target.as_object()["metadata"].as_object().erase("resourceVersion");
    if (kube::value_at(*patch, {"metadata", "resourceVersion"})) {
      target.as_object()["metadata"].as_object()["resourceVersion"] = kube::str_at(*patch, {"metadata", "resourceVersion"});
    }
    json::object checked = target.as_object();
    if (!kube::value_at(checked, {"metadata", "resourceVersion"})) {
      checked["metadata"].as_object()["resourceVersion"] = kube::str_at(*cur, {"metadata", "resourceVersion"});
    }
    if (auto st = validate_write(res, checked, &*cur, strict_fields(req)); !st) return r->respond(error_response(st.error()));
    if (auto st = admit_custom_write(store, res, req, target.as_object(), &*cur, t.sub == "status", *r); !st) {
      return r->respond(error_response(st.error()));
    }
    auto unknown = prune_unknown(req, res, target.as_object());
    if (t.sub.empty()) record_manager(req, res, &*cur, target.as_object());
    if (dry_run(req)) return r->respond(warned(json_response(200, target), unknown));
    auto updated = store.update(res, t.ns, target.as_object(), t.sub == "status" ? UpdateMode::kStatus : UpdateMode::kMain);
    return r->respond(updated ? warned(json_response(200, *updated), unknown) : error_response(updated.error()));
  }
  if (req.method == "DELETE" && !t.name.empty()) {
    std::string precondition_rv, precondition_uid, propagation;
    json::value options;
    if (!req.body.empty()) {
      auto body = parse_request_body(req);
      if (!body) return r->respond(error_response(body.error()));
      options = *body;
      precondition_rv = std::string(kube::str_at(options, {"preconditions", "resourceVersion"}));
      precondition_uid = std::string(kube::str_at(options, {"preconditions", "uid"}));
      propagation = std::string(kube::str_at(options, {"propagationPolicy"}));
      if (kube::bool_at(options, {"orphanDependents"}).value_or(false) && propagation.empty()) propagation = "Orphan";
    }
    if (!req.query_param("propagationPolicy").empty()) propagation = req.query_param("propagationPolicy");
    if (dry_run(req, &options)) {
      auto o = store.get(res, t.ns, t.name);
      return r->respond(o ? json_response(200, *o) : error_response(o.error()));
    }
    auto gone = store.remove(res, t.ns, t.name, precondition_rv, propagation, precondition_uid);
    return r->respond(gone ? json_response(200, *gone) : error_response(gone.error()));
  }
  r->respond(status_response(405, "the server does not allow this method on the requested resource"));
}

void Api::watch(ServerRequest& req, const std::shared_ptr<Responder>& r, const Target& t) {
  auto ls = kube::LabelSelector::parse(req.query_param("labelSelector"));
  if (!ls) return r->respond(status_response(400, ls.error().message));
  auto fs = kube::FieldSelector::parse(req.query_param("fieldSelector"));
  if (!fs) return r->respond(status_response(400, fs.error().message));
  if (auto st = check_field_selector(*t.resource, *fs); !st) return r->respond(error_response(st.error()));
  std::string rv_text = req.query_param("resourceVersion");
  int64_t from = (rv_text.empty() || rv_text == "0") ? -1 : std::atoll(rv_text.c_str());
  bool bookmarks = query_bool(req, "allowWatchBookmarks");
  int64_t timeout_s = req.query_param("timeoutSeconds").empty() ? 1800 : std::atoll(req.query_param("timeoutSeconds").c_str());
  bool table = wants_table(req);

  // Validate the resourceVersion before committing to a 200 stream.
  WatchSpec probe{t.ns, *ls, *fs, std::min(from, c_.store().resource_version()), [](const StoreEvent&) {}};
  auto check = c_.store().watch(*t.resource, probe);
  if (!check) {
    // The real server answers an expired resourceVersion with an ERROR event in a 200 stream.
    auto stream = r->stream(200, {});
    json::object st = json::parse(kube::status_json(410, "Expired", check.error().message)).as_object();
    stream->write(line(json::object{{"type", "ERROR"}, {"object", st}}));
    stream->finish();
    return;
  }
  c_.store().unwatch(*check);

  auto stream = r->stream(200, {});
  uint64_t id = next_watch_++;
  const ResourceInfo* res = t.resource;
  std::string include = req.query_param("includeObject");
  // From a resourceVersion the store has not reached yet: only the changes after it (the watch cache's rule).
  WatchSpec spec{t.ns, *ls, *fs, from, [stream, from, table, res, include](const StoreEvent& e) {
                   if (from >= 0 && e.rv <= from) return;
                   json::value obj = e.object;
                   if (table) obj = to_table(*res, {e.object}, std::to_string(e.rv), {}, include);
                   stream->write(line(json::object{{"type", e.type}, {"object", obj}}));
                 }};
  auto sw = c_.store().watch(*t.resource, spec);
  WatchStream ws{t.resource->ref.resource, t.ns, stream, sw ? *sw : 0, nullptr, nullptr};
  if (bookmarks) {
    struct Bookmarker {
      static void arm(Api* api, uint64_t id, const ResourceInfo* res) {
        auto it = api->watches_.find(id);
        if (it == api->watches_.end()) return;
        it->second.bookmark = api->c_.loop().after(std::chrono::seconds(5), [api, id, res] {
          auto w = api->watches_.find(id);
          if (w == api->watches_.end()) return;
          json::object obj{{"kind", res->ref.kind},
                           {"apiVersion", res->ref.api_version()},
                           {"metadata", json::object{{"resourceVersion", std::to_string(api->c_.store().resource_version())}}}};
          w->second.stream->write(line(json::object{{"type", "BOOKMARK"}, {"object", obj}}));
          arm(api, id, res);
        });
      }
    };
    watches_[id] = ws;
    Bookmarker::arm(this, id, t.resource);
  } else {
    watches_[id] = ws;
  }
  watches_[id].timeout = c_.loop().after(std::chrono::seconds(timeout_s), [this, id] {
    auto it = watches_.find(id);
    if (it != watches_.end()) it->second.stream->finish();
  });
  stream->on_close([this, id] { end_watch(id); });
}

void Api::end_watch(uint64_t id) {
  auto it = watches_.find(id);
  if (it == watches_.end()) return;
  c_.store().unwatch(it->second.store_watch);
  if (it->second.bookmark) it->second.bookmark->cancel();
  if (it->second.timeout) it->second.timeout->cancel();
  watches_.erase(it);
}

size_t Api::disconnect_watches(const std::string& resource, const std::string& ns) {
  std::vector<std::shared_ptr<ResponseStream>> victims;
  for (auto& [id, w] : watches_) {
    if ((resource.empty() || w.resource == resource) && (ns.empty() || w.ns == ns)) victims.push_back(w.stream);
  }
  for (auto& s : victims) s->abort();
  return victims.size();
}

void Api::kubevirt_subresource(ServerRequest& req, const std::shared_ptr<Responder>& r, const Caller& caller,
                               const std::vector<std::string>& parts) {
  // /apis/subresources.kubevirt.io/v1/namespaces/{ns}/{virtualmachines|virtualmachineinstances}/{name}/{sub}
  if (parts.size() != 8 || parts[2] != "v1" || parts[3] != "namespaces" ||
      (parts[5] != "virtualmachineinstances" && parts[5] != "virtualmachines")) {
    return r->respond(status_response(404, "the server could not find the requested resource"));
  }
  std::string ns = parts[4], name = parts[6], sub = parts[7];
  const bool on_vm = parts[5] == "virtualmachines";
  static const std::set<std::string> kVmSubs{"start", "stop", "restart"};
  static const std::set<std::string> kVmiSubs{"freeze", "unfreeze", "guestosinfo", "pause", "unpause"};
  if (!(on_vm ? kVmSubs : kVmiSubs).count(sub)) {
    return r->respond(status_response(404, "the server could not find the requested resource"));
  }
  Target t{&c_.resource(on_vm ? res::kVirtualMachines : res::kVirtualMachineInstances), ns, name, sub};
  std::string verb = sub == "guestosinfo" ? "get" : "update";
  if (!authorize(caller, verb, t, r)) return;
  std::string resource = parts[5] + "/" + sub;
  current_ = verb + " " + resource;
  ++requests_[current_];
  if (const Fault* f = c_.faults().api_error(RequestInfo{verb, resource, ns, name})) {
    return r->respond(status_response(f->code, f->message.empty() ? "simulated API error" : f->message));
  }
  if (sub == "guestosinfo" ? req.method != "GET" : req.method != "PUT") {
    return r->respond(status_response(405, "the server does not allow this method on the requested resource"));
  }
  if (sub == "start" || sub == "stop" || sub == "restart" || sub == "pause" || sub == "unpause") {
    // virt-api lifecycle.go: the options body is optional; a malformed one is a 400.
    std::optional<json::object> body;
    if (!req.body.empty()) {
      auto parsed = parse_request_body(req);
      if (!parsed || !parsed->is_object()) {
        return r->respond(status_response(400, "Can not unmarshal Request body to struct, error: " +
                                                   (parsed ? std::string("not a JSON object") : parsed.error().message)));
      }
      body = parsed->as_object();
    }
    LifecycleAnswer a = c_.kubevirt().lifecycle(ns, name, sub, body ? &*body : nullptr);
    if (a.status >= 300) return r->respond(status_response(a.status, a.message));
    ServerResponse done;
    done.status = a.status;
    return r->respond(done);
  }
  auto answer = [r](FreezeOutcome o) {
    if (o.http_status == 200) {
      ServerResponse ok_resp;
      return r->respond(ok_resp);
    }
    r->respond(status_response(o.http_status, o.http_message));
  };
  if (sub == "freeze") {
    auto body = parse_request_body(req);
    std::string timeout = body ? std::string(kube::str_at(*body, {"unfreezeTimeout"})) : "";
    if (req.body.empty() || !body || timeout.empty()) {
      return r->respond(status_response(400, "Unfreeze timeout in freeze request is not set"));
    }
    auto d = parse_duration(timeout);
    if (!d) return r->respond(status_response(400, "unfreezeTimeout: " + d.error().message));
    return c_.kubevirt().freeze_subresource(ns, name, *d, answer);
  }
  if (sub == "unfreeze") return c_.kubevirt().unfreeze_subresource(ns, name, answer);
  auto info = c_.kubevirt().guest_os_info(ns, name);
  if (!info) return r->respond(error_response(info.error()));
  r->respond(json_response(200, *info));
}

void Api::inspection(ServerRequest& req, const std::shared_ptr<Responder>& r) {
  const std::string& p = req.path;
  if (p == "/testcluster/v1/timeline" && req.method == "GET") return r->respond(json_response(200, c_.timeline().events_json()));
  if (p == "/testcluster/v1/timeline" && req.method == "DELETE") {
    c_.timeline().clear();
    return r->respond(json_response(200, json::object{}));
  }
  if (p == "/testcluster/v1/vms" && req.method == "GET") return r->respond(json_response(200, c_.timeline().vms_json()));
  if (p == "/testcluster/v1/volumes" && req.method == "GET") {
    VolumeHashFilter h{req.query_param("sha256") == "true", req.query_param("namespace"), req.query_param("pvc"),
                      req.query_param("volumeSnapshot")};
    return r->respond(json_response(200, c_.csi().volumes_json(h)));
  }
  if (p == "/testcluster/v1/faults") {
    if (req.method == "GET") return r->respond(json_response(200, json::object{{"faults", c_.faults().to_json()}}));
    if (req.method == "DELETE") {
      c_.faults().clear();
      return r->respond(json_response(200, json::object{{"faults", json::array{}}}));
    }
    if (req.method == "POST") {
      auto body = parse_request_body(req);
      if (!body) return r->respond(error_response(body.error()));
      auto f = c_.faults().add(*body, "POST /testcluster/v1/faults");
      if (!f) return r->respond(status_response(400, f.error().message));
      json::object out = f->to_json();
      if (f->type == "watch-disconnect") out["disconnected"] = disconnect_watches(f->resource, f->ns);
      if (f->type == "export-restart") c_.exports().arm_restart(f->after_bytes, f->count);
      return r->respond(json_response(201, out));
    }
  }
  if (p == "/testcluster/v1/exports" && req.method == "GET") return r->respond(json_response(200, c_.exports().stats()));
  if (p == "/testcluster/v1/exports" && req.method == "DELETE") {
    c_.exports().clear_stats();
    return r->respond(json_response(200, json::object{}));
  }
  if (p == "/testcluster/v1/stats" && req.method == "GET") {
    json::object by;
    uint64_t total = 0;
    for (const auto& [k, n] : requests_) {
      by[k] = n;
      total += n;
    }
    auto summary = [](const LatencyStats& s) {
      return json::object{{"count", s.count()}, {"sumMs", s.sum_ms()}, {"p50Ms", s.quantile_ms(0.5)},
                          {"p99Ms", s.quantile_ms(0.99)}, {"maxMs", s.max_ms()}};
    };
    json::object handled;
    for (const auto& [k, s] : handled_) handled[k] = summary(s);
    timespec cpu{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);  // this handler runs on the loop thread
    const auto& cuts = c_.csi().cut_stats();
    return r->respond(json_response(
        200, json::object{{"objects", c_.store().object_count()},
                          {"watches", watches_.size()},
                          {"resourceVersion", c_.store().resource_version()},
                          {"requests", total},
                          {"requestsByVerb", std::move(by)},
                          {"loop", json::object{{"cpuMs", static_cast<double>(cpu.tv_sec) * 1e3 + static_cast<double>(cpu.tv_nsec) / 1e6},
                                                {"timerLateness", summary(c_.loop().timer_lateness())}}},
                          {"cuts", json::object{{"frozenToCreate", summary(cuts.frozen_to_create)},
                                                {"lateness", summary(cuts.lateness)},
                                                {"fileWork", summary(cuts.file_work)},
                                                {"total", summary(cuts.total)}}},
                          {"handled", std::move(handled)}}));
  }
  r->respond(status_response(404, "unknown test cluster endpoint " + p));
}

}  // namespace kvb::testcluster
