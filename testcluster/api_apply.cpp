// PATCH with application/apply-patch+yaml: server-side apply through the
// Store (apiserver endpoints/handlers/patch.go applyPatcher; the field
// ownership rules are in server_side_apply.h).
#include "kube/object.h"
#include "testcluster/admission.h"
#include "testcluster/api.h"
#include "testcluster/openapi_builtin.h"
#include "testcluster/responses.h"
#include "testcluster/server_side_apply.h"

#include <boost/json.hpp>

namespace kvb::testcluster {
namespace json = boost::json;

namespace {

ServerResponse conflict_response(const ResourceInfo& res, const std::string& name, const std::vector<ApplyConflict>& conflicts) {
  // errors.NewApplyConflict: 409 Conflict, one FieldManagerConflict cause per field.
  json::array causes;
  for (const auto& c : conflicts) {
    causes.push_back(json::object{{"reason", "FieldManagerConflict"}, {"message", "conflict with " + c.manager}, {"field", c.path}});
  }
  json::object details{{"name", name}, {"group", res.ref.group}, {"kind", res.ref.resource}, {"causes", causes}};
  return json_response(409, json::object{{"kind", "Status"},
                                         {"apiVersion", "v1"},
                                         {"metadata", json::object()},
                                         {"status", "Failure"},
                                         {"message", conflict_message(conflicts)},
                                         {"reason", "Conflict"},
                                         {"details", details},
                                         {"code", 409}});
}

}  // namespace

void Api::apply_patch(ServerRequest& req, const std::shared_ptr<Responder>& r, const Target& t) {
  const ResourceInfo& res = *t.resource;
  if (!t.sub.empty()) {
    return r->respond(status_response(405, "the test cluster does not serve server-side apply to the " + t.sub + " subresource"));
  }
  std::string manager = req.query_param("fieldManager");
  bool force = query_bool(req, "force");
  bool dry = false;
  for (const auto& v : req.query_params("dryRun")) dry = dry || v == "All";
  auto body = parse_request_body(req);
  if (!body) return r->respond(error_response(body.error()));
  if (!body->is_object()) return r->respond(status_response(400, "the request body must be a JSON object"));
  const json::object& conf = body->as_object();
  std::string api_version(kube::str_at(conf, {"apiVersion"}));
  std::string kind(kube::str_at(conf, {"kind"}));
  if (api_version != res.ref.api_version() || kind != res.ref.kind) {
    return r->respond(status_response(400, "the API version in the data (" + api_version + ") does not match the expected API version (" +
                                               res.ref.api_version() + ")"));
  }
  if (kube::name_of(conf) != t.name) {
    return r->respond(status_response(400, "the name of the object (" + std::string(kube::name_of(conf)) +
                                               ") does not match the name on the URL (" + t.name + ")"));
  }
  {
    // The configuration must fit the kind's schema (fieldmanager structuredmerge.go: a 500 without a reason).
    json::object copy = conf;
    auto unknown = unknown_fields(res, copy, false, PathStyle::kStructured);
    if (!unknown.empty()) {
      std::string what;
      for (const auto& f : unknown) what += (unknown.size() > 1 ? "\n  " : "") + f + ": field not declared in schema";
      if (unknown.size() > 1) what = "errors:" + what;
      std::string gvk = (res.ref.group.empty() ? "/" : "") + res.ref.api_version() + ", Kind=" + res.ref.kind;
      std::string nn = (t.ns.empty() ? "/" : t.ns + "/") + t.name;
      return r->respond(json_response(500, json::object{{"kind", "Status"},
                                                        {"apiVersion", "v1"},
                                                        {"metadata", json::object()},
                                                        {"status", "Failure"},
                                                        {"message", "failed to create typed patch object (" + nn + "; " + gvk + "): " + what},
                                                        {"code", 500}}));
    }
  }
  bool strict = req.query_param("fieldValidation") == "Strict";
  Store& store = c_.store();
  const Object* cur = store.find(res, t.ns, t.name);
  if (!cur) {
    // Apply to a missing object creates it (patch.go: applyPatcher with a nil live object).
    json::object check = conf;
    if (auto* m = check.if_contains("metadata"); m && m->is_object()) m->as_object().erase("resourceVersion");
    if (auto st = validate_write(res, check, nullptr, strict); !st) return r->respond(error_response(st.error()));
    ApplyResult a = server_side_apply(res, nullptr, check, manager, force, WallClock::now());
    if (res.has_status) a.object.erase("status");
    if (dry) return r->respond(json_response(201, a.object));
    auto created = store.create(res, t.ns, std::move(a.object));
    return r->respond(created ? json_response(201, *created) : error_response(created.error()));
  }
  Object current = *cur;  // the store may change under later calls
  ApplyResult a = server_side_apply(res, &current, conf, manager, force, WallClock::now());
  if (!a.conflicts.empty()) return r->respond(conflict_response(res, t.name, a.conflicts));
  a.object["metadata"].as_object()["resourceVersion"] = kube::str_at(current, {"metadata", "resourceVersion"});
  if (auto st = validate_write(res, a.object, &current, false); !st) return r->respond(error_response(st.error()));
  if (dry) return r->respond(json_response(200, a.object));
  auto updated = store.update(res, t.ns, std::move(a.object), UpdateMode::kMain);
  r->respond(updated ? json_response(200, *updated) : error_response(updated.error()));
}

}  // namespace kvb::testcluster
