#include "testcluster/admission.h"

#include "kube/object.h"
#include "testcluster/csi.h"
#include "testcluster/openapi_builtin.h"

#include <boost/json.hpp>

#include <map>
#include <regex>
#include <set>

namespace kvb::testcluster {
namespace json = boost::json;

namespace {

using Fields = std::set<std::string>;

Error invalid(const ResourceInfo& r, const std::string& name, const std::string& detail) {
  Error e(Errc::kInvalid, r.ref.kind + (is_builtin(r) ? "" : "." + r.ref.group) + " \"" + name + "\" is invalid: " + detail);
  e.http_status = 422;
  e.reason = "Invalid";
  return e;
}

Error bad_request(const std::string& message) {
  Error e(Errc::kBadRequest, message);
  e.http_status = 400;
  e.reason = "BadRequest";
  return e;
}

std::string json_quoted(const std::string& s) { return json::serialize(json::string(s)); }

const std::regex kDns1123Subdomain("[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*");
const std::regex kDns1123Label("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
const std::regex kLabelValue("(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?");

// apimachinery/pkg/util/validation: IsDNS1123Subdomain / IsDNS1123Label.
std::string name_problem(const std::string& name, bool label) {
  if (label) {
    if (name.size() > 63) return "must be no more than 63 characters";
    if (!std::regex_match(name, kDns1123Label)) {
      return "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
             "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    }
    return {};
  }
  if (name.size() > 253) return "must be no more than 253 characters";
  if (!std::regex_match(name, kDns1123Subdomain)) {
    return "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
           "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
           "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
  }
  return {};
}

// Unknown fields at any depth, from the schema table (openapi_builtin.h); kinds without a schema have none.
std::vector<std::string> undeclared_fields(const ResourceInfo& r, const Object& obj) {
  Object copy = obj;
  return unknown_fields(r, copy, false);
}

Status validate_vm(const ResourceInfo& r, const std::string& name, const Object& vm) {
  // KubeVirt's virtualmachine-validator webhook (pkg/virt-api/webhooks/validating-webhook/admitters/vms-admitter.go).
  std::vector<std::string> causes;
  const auto* spec = kube::object_at(vm, {"spec"});
  bool running = spec && spec->contains("running");
  bool strategy = spec && spec->contains("runStrategy");
  if (running && strategy) {
    causes.push_back("Running and RunStrategy are mutually exclusive. Note that Running is deprecated, please use RunStrategy instead");
  }
  if (!running && !strategy) causes.push_back("RunStrategy must be specified");
  if (strategy) {
    static const Fields kValid{"Halted", "Manual", "Always", "RerunOnFailure", "Once", "WaitAsReceiver"};
    std::string s(kube::str_at(vm, {"spec", "runStrategy"}));
    if (!kValid.count(s)) causes.push_back("Invalid RunStrategy (" + s + ")");
  }
  if (causes.empty()) return ok();
  std::string msg;
  for (const auto& c : causes) msg += (msg.empty() ? "" : ", ") + c;
  (void)name;
  (void)r;
  Error e(Errc::kInvalid, "admission webhook \"virtualmachine-validator.kubevirt.io\" denied the request: " + msg);
  e.http_status = 422;
  e.reason = "Invalid";
  return e;
}

Status validate_pvc_update(const ResourceInfo& r, const std::string& name, const Object& obj, const Object& old) {
  // ValidatePersistentVolumeClaimUpdate (pkg/apis/core/validation/validation.go).
  json::object a, b;
  if (const auto* s = kube::object_at(obj, {"spec"})) a = *s;
  if (const auto* s = kube::object_at(old, {"spec"})) b = *s;
  auto storage = [](const json::object& s) { return std::string(kube::str_at(s, {"resources", "requests", "storage"})); };
  std::string want = storage(a), had = storage(b);
  // Binding fills in volumeName once; storage may grow.
  for (auto* s : {&a, &b}) {
    if (auto* res = s->if_contains("resources"); res && res->is_object()) {
      if (auto* req = res->as_object().if_contains("requests"); req && req->is_object()) req->as_object().erase("storage");
    }
  }
  if (b.contains("volumeName") && !a.contains("volumeName")) a["volumeName"] = b["volumeName"];
  if (a != b) {
    return invalid(r, name, "spec: Forbidden: spec is immutable after creation except resources.requests and "
                            "volumeAttributesClassName for bound claims");
  }
  if (!want.empty() && !had.empty() && parse_quantity(want) < parse_quantity(had)) {
    return invalid(r, name, "spec.resources.requests.storage: Forbidden: field can not be less than previous value");
  }
  return ok();
}

}  // namespace

bool is_builtin(const ResourceInfo& r) {
  const std::string& g = r.ref.group;
  return g.empty() || g == "storage.k8s.io" || g == "coordination.k8s.io" || g == "authorization.k8s.io" ||
         g == "apiextensions.k8s.io";
}

Status validate_write(const ResourceInfo& r, const Object& obj, const Object* old, bool strict) {
  std::string name(kube::str_at(obj, {"metadata", "name"}));
  if (!old && !kube::str_at(obj, {"metadata", "resourceVersion"}).empty()) {
    // rest.BeforeCreate / the generic registry's Create.
    return bad_request("resourceVersion should not be set on objects to be created");
  }
  if (strict) {
    auto unknown = undeclared_fields(r, obj);
    if (!unknown.empty()) {
      std::string msg;
      for (const auto& f : unknown) msg += (msg.empty() ? "" : ", ") + std::string("unknown field ") + json_quoted(f);
      return bad_request(r.ref.kind + " in version " + json_quoted(r.ref.version) + " cannot be handled as a " + r.ref.kind +
                         ": strict decoding error: " + msg);
    }
  }
  if (!old) {
    bool label = r.ref.resource == "namespaces" && r.ref.group.empty();
    std::string shown = name.empty() ? std::string(kube::str_at(obj, {"metadata", "generateName"})) : name;
    if (!shown.empty()) {
      std::string problem = name_problem(name.empty() ? shown + "x" : name, label);
      if (!problem.empty()) {
        return invalid(r, shown, std::string(name.empty() ? "metadata.generateName" : "metadata.name") +
                                     ": Invalid value: " + json_quoted(shown) + ": " + problem);
      }
    }
  }
  // ValidateLabels (apimachinery/pkg/apis/meta/v1/validation).
  if (const auto* labels = kube::object_at(obj, {"metadata", "labels"})) {
    for (const auto& [k, v] : *labels) {
      std::string value = v.is_string() ? std::string(v.as_string()) : json::serialize(v);
      std::string problem;
      if (value.size() > 63) problem = "must be no more than 63 characters";
      else if (!std::regex_match(value, kLabelValue)) {
        problem = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
                  "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
                  "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
      }
      if (!problem.empty()) return invalid(r, name, "metadata.labels: Invalid value: " + json_quoted(value) + ": " + problem);
    }
  }
  if (old && !is_builtin(r) && kube::str_at(obj, {"metadata", "resourceVersion"}).empty()) {
    // The custom resource strategy does not allow unconditional updates.
    return invalid(r, name, "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update");
  }
  if (old && r.ref.group.empty() && r.ref.resource == "persistentvolumeclaims") {
    KVB_CHECK(validate_pvc_update(r, name, obj, *old));
  }
  if (r.ref.group == "kubevirt.io" && r.ref.resource == "virtualmachines") KVB_CHECK(validate_vm(r, name, obj));
  return ok();
}

Status check_field_selector(const ResourceInfo& r, const kube::FieldSelector& fs) {
  // Each registry's GetAttrs / AddFieldLabelConversionFunc (pkg/registry/core/*/strategy.go,
  // pkg/apis/core/v1/conversion.go); custom resources: metadata.name and metadata.namespace only.
  static const std::map<std::string, Fields> kExtra{
      {"pods", {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs", "status.nominatedNodeName"}},
      {"events", {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
                  "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                  "reportingComponent", "source", "type"}},
      {"secrets", {"type"}},
      {"namespaces", {"status.phase"}},
      {"nodes", {"spec.unschedulable"}},
      {"persistentvolumeclaims", {}},
      {"persistentvolumes", {}},
  };
  Fields allowed{"metadata.name", "metadata.namespace"};
  if (r.ref.group.empty()) {
    auto it = kExtra.find(r.ref.resource);
    if (it != kExtra.end()) allowed.insert(it->second.begin(), it->second.end());
  }
  for (const auto& req : fs.requirements()) {
    if (!allowed.count(req.path)) return bad_request("field label not supported: " + req.path);
  }
  return ok();
}

}  // namespace kvb::testcluster
