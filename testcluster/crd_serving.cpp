#include "testcluster/crd_serving.h"

#include "kube/object.h"
#include "testcluster/admission.h"
#include "testcluster/crd_schema.h"
#include "testcluster/registry.h"
#include "testcluster/tables.h"

#include <boost/json.hpp>

#include <set>

namespace kvb::testcluster {
namespace json = boost::json;

namespace {

bool is_crd_resource(const ResourceInfo& r) {
  return r.ref.group == res::kCustomResourceDefinitions.group && r.ref.resource == res::kCustomResourceDefinitions.resource;
}

// The CRD serving r and r's entry in spec.versions (nullptr when gone).
struct Served {
  const Object* crd = nullptr;
  const json::object* version = nullptr;
  const json::object* schema = nullptr;
};

Served served(const Store& store, const ResourceInfo& r) {
  Served s;
  const ResourceInfo* crds = store.registry().find(res::kCustomResourceDefinitions.group, res::kCustomResourceDefinitions.version,
                                                   res::kCustomResourceDefinitions.resource);
  if (!crds) return s;
  s.crd = store.find(*crds, "", r.ref.resource + "." + r.ref.group);
  if (!s.crd) return s;
  if (const auto* versions = kube::array_at(*s.crd, {"spec", "versions"})) {
    for (const auto& v : *versions) {
      if (v.is_object() && kube::str_at(v, {"name"}) == r.ref.version) s.version = &v.as_object();
    }
  }
  if (s.version) s.schema = kube::object_at(*s.version, {"schema", "openAPIV3Schema"});
  return s;
}

std::string warning_header(const std::string& text) {
  std::string escaped;
  for (char c : text) {
    if (c == '"' || c == '\\') escaped += '\\';
    escaped += c;
  }
  return "299 - \"" + escaped + "\"";
}

// Status.details of a 422 Invalid (apimachinery errors.NewInvalid): what kubectl prints
// as `The <Kind> "<name>" is invalid: <field>: <message>`.
json::object invalid_details(const std::string& group, const std::string& kind, const std::string& name,
                             const std::vector<std::string>& errs) {
  json::array causes;
  for (const auto& e : errs) {
    size_t colon = e.find(": ");
    std::string field = colon == std::string::npos ? std::string() : e.substr(0, colon);
    std::string message = colon == std::string::npos ? e : e.substr(colon + 2);
    std::string type = "FieldValueInvalid";
    for (const auto& [prefix, t] : std::initializer_list<std::pair<const char*, const char*>>{
             {"Required value", "FieldValueRequired"}, {"Unsupported value", "FieldValueNotSupported"},
             {"Too long", "FieldValueTooLong"}, {"Too many", "FieldValueTooMany"}, {"Forbidden", "FieldValueForbidden"}}) {
      if (message.rfind(prefix, 0) == 0) type = t;
    }
    causes.push_back(json::object{{"reason", type}, {"message", message}, {"field", field}});
  }
  return json::object{{"name", name}, {"group", group}, {"kind", kind}, {"causes", causes}};
}

Error invalid_error(const std::string& qualified_kind, const std::string& name, const std::vector<std::string>& errs) {
  std::string detail;
  if (errs.size() == 1) {
    detail = errs.front();
  } else {
    for (const auto& e : errs) detail += (detail.empty() ? "[" : ", ") + e;
    detail += "]";
  }
  Error e(Errc::kInvalid, qualified_kind + " \"" + name + "\" is invalid: " + detail);
  e.http_status = 422;
  e.reason = "Invalid";
  return e;
}

// A printer column's jsonPath (".status.phase", ".spec.items[0].name",
// ".status.conditions[?(@.type==\"Ready\")].status"); nullptr when absent.
const json::value* eval_path(const json::value& root, const std::string& path) {
  const json::value* cur = &root;
  size_t i = 0;
  while (cur && i < path.size()) {
    if (path[i] == '.') {
      size_t end = path.find_first_of(".[", i + 1);
      std::string key = path.substr(i + 1, end == std::string::npos ? std::string::npos : end - i - 1);
      cur = cur->is_object() ? cur->as_object().if_contains(key) : nullptr;
      i = end == std::string::npos ? path.size() : end;
    } else if (path[i] == '[') {
      size_t end = path.find(']', i);
      if (end == std::string::npos || !cur->is_array()) return nullptr;
      std::string inner = path.substr(i + 1, end - i - 1);
      if (inner.rfind("?(@.", 0) == 0) {
        size_t eq = inner.find("==");
        if (eq == std::string::npos) return nullptr;
        std::string key = inner.substr(4, eq - 4);
        std::string want = inner.substr(eq + 2);
        if (!want.empty() && want.back() == ')') want.pop_back();
        if (want.size() >= 2 && (want.front() == '"' || want.front() == '\'')) want = want.substr(1, want.size() - 2);
        const json::value* found = nullptr;
        for (const auto& e : cur->as_array()) {
          if (!found && kube::str_at(e, {key}) == want) found = &e;
        }
        cur = found;
      } else {
        size_t n = std::strtoul(inner.c_str(), nullptr, 10);
        cur = n < cur->as_array().size() ? &cur->as_array()[n] : nullptr;
      }
      i = end + 1;
    } else {
      return nullptr;
    }
  }
  return cur;
}

// CRDValidationRatcheting (beta, on by default in 1.30-1.32; apiextensions-apiserver
// pkg/apiserver/schema/.../ratcheting.go): an update may keep a value that no longer
// validates as long as it is unchanged. Inside a list the whole list must be unchanged
// (plain lists are atomic: their items cannot be correlated); a missing required
// field is kept when the object that lacks it is unchanged.
std::vector<std::string> ratchet(std::vector<std::string> errs, const json::value& now, const json::value& old) {
  std::vector<std::string> kept;
  for (auto& e : errs) {
    size_t colon = e.find(": ");
    std::string path = colon == std::string::npos ? std::string() : e.substr(0, colon);
    bool required = colon != std::string::npos && e.compare(colon + 2, 14, "Required value") == 0;
    if (required) {
      size_t dot = path.find_last_of('.');
      path = dot == std::string::npos ? std::string() : path.substr(0, dot);
    }
    if (size_t bracket = path.find('['); bracket != std::string::npos) path = path.substr(0, bracket);
    const json::value* a = path.empty() ? &now : eval_path(now, "." + path);
    const json::value* b = path.empty() ? &old : eval_path(old, "." + path);
    if (!(a && b && *a == *b)) kept.push_back(std::move(e));
  }
  return kept;
}

class CustomResponder final : public Responder, public std::enable_shared_from_this<CustomResponder> {
 public:
  CustomResponder(const Store& store, const ResourceInfo& r, std::shared_ptr<Responder> inner)
      : store_(store), res_(r), inner_(std::move(inner)) {
    Served s = served(store_, res_);
    if (s.version && kube::bool_at(*s.version, {"deprecated"}).value_or(false)) {
      std::string text(kube::str_at(*s.version, {"deprecationWarning"}));
      if (text.empty()) text = res_.ref.group + "/" + res_.ref.version + " " + res_.ref.kind + " is deprecated";
      warnings_.push_back(text);
    }
  }

  void warn(const std::string& text) { warnings_.push_back(text); }
  void set_details(json::object details) { details_ = std::move(details); }

  void respond(ServerResponse r) override {
    if (r.status == 422 && !details_.empty()) {
      boost::system::error_code ec;
      json::value body = json::parse(r.body, ec);
      if (!ec && body.is_object()) {
        body.as_object()["details"] = details_;
        r.body = json::serialize(body);
      }
    }
    if (res_.custom && r.status < 300 && !r.body.empty()) {
      boost::system::error_code ec;
      json::value body = json::parse(r.body, ec);
      if (!ec && body.is_object()) {
        convert(body.as_object());
        r.body = json::serialize(body);
      }
    }
    add_warnings(r.headers);
    inner_->respond(std::move(r));
  }

  std::shared_ptr<ResponseStream> stream(int status, HeaderList headers) override {
    add_warnings(headers);
    return std::make_shared<Stream>(shared_from_this(), inner_->stream(status, std::move(headers)));
  }
  void upgrade(std::string protocol, WebSocketHandlers handlers) override { inner_->upgrade(std::move(protocol), std::move(handlers)); }
  void respond_truncated(ServerResponse r, size_t bytes) override { inner_->respond_truncated(std::move(r), bytes); }
  void drop() override { inner_->drop(); }

 private:
  // Watch events, one JSON object a line.
  class Stream final : public ResponseStream {
   public:
    Stream(std::shared_ptr<CustomResponder> owner, std::shared_ptr<ResponseStream> inner) : owner_(std::move(owner)), inner_(std::move(inner)) {}
    void write(std::string data) override {
      if (!owner_->res_.custom) return inner_->write(std::move(data));
      boost::system::error_code ec;
      json::value ev = json::parse(data, ec);
      if (!ec && ev.is_object()) {
        auto* o = ev.as_object().if_contains("object");
        if (o && o->is_object() && kube::str_at(ev, {"type"}) != "BOOKMARK") owner_->convert(o->as_object());
        if (o && o->is_object() && kube::str_at(ev, {"type"}) == "BOOKMARK") o->as_object()["apiVersion"] = owner_->res_.ref.api_version();
        data = json::serialize(ev) + "\n";
      }
      inner_->write(std::move(data));
    }
    void finish() override { inner_->finish(); }
    void abort() override { inner_->abort(); }
    bool done() const override { return inner_->done(); }
    void on_close(std::function<void()> fn) override { inner_->on_close(std::move(fn)); }

   private:
    std::shared_ptr<CustomResponder> owner_;
    std::shared_ptr<ResponseStream> inner_;
  };

  void add_warnings(HeaderList& headers) const {
    for (const auto& w : warnings_) headers.emplace_back("Warning", warning_header(w));
  }

  // An object as read from storage and served at the requested version.
  void serve(json::object& o, const Served& s) const {
    o["apiVersion"] = res_.ref.api_version();
    if (!s.schema) return;
    json::value v(std::move(o));
    (void)crd::prune(v, *s.schema);
    crd::apply_defaults(v, *s.schema);
    o = std::move(v.as_object());
  }

  void convert(json::object& body) const {
    if (!res_.custom) return;
    Served s = served(store_, res_);
    std::string kind(kube::str_at(body, {"kind"}));
    if (kind == res_.ref.kind) return serve(body, s);
    if (kind == res_.ref.kind + "List") {
      body["apiVersion"] = res_.ref.api_version();
      if (auto* items = body.if_contains("items"); items && items->is_array()) {
        for (auto& it : items->as_array()) {
          if (it.is_object()) serve(it.as_object(), s);
        }
      }
      return;
    }
    if (kind == "Table" && s.version) table(body, s);
  }

  // additionalPrinterColumns (pkg/registry/customresource/tableconvertor): Name, then the columns.
  void table(json::object& t, const Served& s) const {
    const auto* cols = kube::array_at(*s.version, {"additionalPrinterColumns"});
    if (!cols || cols->empty()) return;
    json::array defs;
    if (const auto* old = kube::array_at(t, {"columnDefinitions"}); old && !old->empty()) defs.push_back(old->front());
    for (const auto& c : *cols) {
      defs.push_back(json::object{{"name", kube::str_at(c, {"name"})},
                                  {"type", kube::str_at(c, {"type"})},
                                  {"format", kube::str_at(c, {"format"})},
                                  {"description", kube::str_at(c, {"description"})},
                                  {"priority", kube::int_at(c, {"priority"}).value_or(0)}});
    }
    t["columnDefinitions"] = defs;
    auto* rows = t.if_contains("rows");
    if (!rows || !rows->is_array()) return;
    for (auto& row : rows->as_array()) {
      if (!row.is_object()) continue;
      auto& ro = row.as_object();
      std::string ns(kube::str_at(ro, {"object", "metadata", "namespace"}));
      std::string name(kube::str_at(ro, {"object", "metadata", "name"}));
      const Object* stored = store_.find(res_, ns, name);
      json::value obj = stored ? json::value(*stored) : json::value(json::object());
      if (obj.is_object()) serve(obj.as_object(), s);
      json::array cells{json::string(name)};
      for (const auto& c : *cols) {
        const json::value* v = eval_path(obj, std::string(kube::str_at(c, {"jsonPath"})));
        std::string type(kube::str_at(c, {"type"}));
        if (!v || v->is_null()) cells.push_back(nullptr);
        else if (type == "date" && v->is_string()) cells.push_back(json::string(human_age(std::string(v->as_string()))));
        else cells.push_back(*v);
      }
      ro["cells"] = cells;
      if (auto* o = ro.if_contains("object"); o && o->is_object() && kube::str_at(*o, {"kind"}) == res_.ref.kind) {
        serve(o->as_object(), s);
      }
    }
  }

  const Store& store_;
  const ResourceInfo& res_;
  std::shared_ptr<Responder> inner_;
  std::vector<std::string> warnings_;
  json::object details_;
};

// ValidateCustomResourceDefinition (pkg/apis/apiextensions/validation/validation.go), the parts kept here.
std::vector<std::string> crd_problems(const Object& crd, const Object* old) {
  std::vector<std::string> errs;
  std::string name(kube::str_at(crd, {"metadata", "name"}));
  std::string group(kube::str_at(crd, {"spec", "group"}));
  std::string plural(kube::str_at(crd, {"spec", "names", "plural"}));
  if (name != plural + "." + group) {
    errs.push_back("metadata.name: Invalid value: " + crd::go_value(json::string(name)) + ": must be spec.names.plural+\".\"+spec.group");
  }
  if (group.empty()) errs.push_back("spec.group: Required value");
  else if (group.find('.') == std::string::npos) {
    errs.push_back("spec.group: Invalid value: " + crd::go_value(json::string(group)) + ": should be a domain with at least one dot");
  }
  std::string scope(kube::str_at(crd, {"spec", "scope"}));
  if (scope.empty()) errs.push_back("spec.scope: Required value");
  else if (scope != "Cluster" && scope != "Namespaced") {
    errs.push_back("spec.scope: Unsupported value: " + crd::go_value(json::string(scope)) + ": supported values: \"Cluster\", \"Namespaced\"");
  }
  const auto* versions = kube::array_at(crd, {"spec", "versions"});
  size_t storage = 0;
  if (versions) {
    for (size_t i = 0; i < versions->size(); ++i) {
      const auto& v = (*versions)[i];
      if (kube::bool_at(v, {"storage"}).value_or(false)) ++storage;
      std::string at = "spec.versions[" + std::to_string(i) + "].schema.openAPIV3Schema";
      const auto* schema = kube::object_at(v, {"schema", "openAPIV3Schema"});
      if (!schema) {
        errs.push_back(at + ": Required value: schemas are required");
        continue;
      }
      for (auto& p : crd::structural_problems(*schema, at)) errs.push_back(std::move(p));
    }
  }
  if (storage != 1) {
    errs.push_back("spec.versions: Invalid value: " + (versions ? json::serialize(*versions) : std::string("null")) +
                   ": must have exactly one version marked as storage version");
  }
  // ValidateStoredVersions: a version objects may be stored in stays until they are migrated.
  if (const auto* stored = old ? kube::array_at(*old, {"status", "storedVersions"}) : nullptr) {
    for (size_t i = 0; i < stored->size(); ++i) {
      if (!(*stored)[i].is_string()) continue;
      bool listed = false;
      for (const auto& v : versions ? *versions : json::array()) listed = listed || kube::str_at(v, {"name"}) == (*stored)[i].as_string();
      if (!listed) {
        errs.push_back("status.storedVersions[" + std::to_string(i) + "]: Invalid value: " + crd::go_value((*stored)[i]) +
                       ": must appear in spec.versions");
      }
    }
  }
  if (kube::str_at(crd, {"spec", "conversion", "strategy"}) == "Webhook") {
    errs.push_back("spec.conversion.strategy: Forbidden: kvbackup-testcluster runs no conversion webhooks (use strategy None)");
  }
  return errs;
}

}  // namespace

std::shared_ptr<Responder> custom_responder(const Store& store, const ResourceInfo& r, std::shared_ptr<Responder> inner) {
  if (!r.custom && !is_crd_resource(r)) return inner;
  return std::make_shared<CustomResponder>(store, r, std::move(inner));
}

Status admit_custom_write(const Store& store, const ResourceInfo& r, const ServerRequest& req, Object& obj,
                          const Object* old, bool status, Responder& resp) {
  auto* cr = dynamic_cast<CustomResponder*>(&resp);
  if (is_crd_resource(r)) {
    if (status) return ok();
    std::vector<std::string> errs = crd_problems(obj, old);
    if (errs.empty()) return ok();
    std::string name(kube::str_at(obj, {"metadata", "name"}));
    if (cr) cr->set_details(invalid_details(r.ref.group, r.ref.kind, name, errs));
    return invalid_error("CustomResourceDefinition.apiextensions.k8s.io", name, errs);
  }
  if (!r.custom) return ok();
  Served s = served(store, r);
  if (!s.schema) return ok();
  json::value v(std::move(obj));
  std::vector<std::string> unknown = crd::prune(v, *s.schema);
  obj = std::move(v.as_object());
  // schemaobjectmeta.GetObjectMetaWithOptions(ReturnUnknownFieldPaths): metadata is ObjectMeta, whatever the schema says.
  if (auto* m = obj.if_contains("metadata"); m && m->is_object()) {
    static const std::set<std::string, std::less<>> kMeta{
        "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
        "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences", "finalizers", "managedFields"};
    std::vector<std::string> extra;
    for (const auto& [k, mv] : m->as_object()) {
      if (!kMeta.count(std::string_view(k))) extra.emplace_back(k);
    }
    for (const auto& k : extra) {
      m->as_object().erase(k);
      unknown.push_back("metadata." + k);
    }
  }
  std::string mode = req.query_param("fieldValidation");
  if (!unknown.empty() && mode == "Strict") {
    std::string msg;
    for (const auto& f : unknown) msg += (msg.empty() ? "" : ", ") + std::string("unknown field ") + json::serialize(json::string(f));
    Error e(Errc::kBadRequest, r.ref.kind + " in version " + json::serialize(json::string(r.ref.version)) + " cannot be handled as a " +
                                   r.ref.kind + ": strict decoding error: " + msg);
    e.http_status = 400;
    e.reason = "BadRequest";
    return e;
  }
  if (mode != "Ignore") {
    if (cr) {
      for (const auto& f : unknown) cr->warn("unknown field " + json::serialize(json::string(f)));
    }
  }
  v = json::value(std::move(obj));
  crd::apply_defaults(v, *s.schema);
  obj = std::move(v.as_object());
  crd::Part part = status ? crd::Part::kStatusOnly : (r.has_status && old ? crd::Part::kAllButStatus : crd::Part::kAll);
  // On a main-resource write with a status subresource the stored status stays (validated when it was written).
  json::value checked(obj);
  if (part == crd::Part::kAllButStatus || (r.has_status && !old)) checked.as_object().erase("status");
  auto errs = crd::validate(checked, *s.schema, part);
  if (old) errs = ratchet(std::move(errs), checked, json::value(*old));
  if (errs.empty()) return ok();
  std::string name(kube::str_at(obj, {"metadata", "name"}));
  if (cr) cr->set_details(invalid_details(r.ref.group, r.ref.kind, name, errs));
  return invalid_error(r.ref.kind + "." + r.ref.group, name, errs);
}

void add_crd_openapi(const Store& store, const std::string& gv_path, json::object& doc) {
  json::object* schemas = nullptr;
  if (auto* comps = doc.if_contains("components"); comps && comps->is_object()) {
    auto& c = comps->as_object();
    if (!c.contains("schemas") || !c["schemas"].is_object()) c["schemas"] = json::object();
    schemas = &c["schemas"].as_object();
  }
  if (!schemas) return;
  for (const auto& info : store.registry().all()) {
    if (!info.custom || !info.served || "apis/" + info.ref.group + "/" + info.ref.version != gv_path) continue;
    Served s = served(store, info);
    if (!s.schema) continue;
    json::object schema = *s.schema;
    json::object props = schema.contains("properties") && schema["properties"].is_object() ? schema["properties"].as_object() : json::object();
    if (!props.contains("apiVersion")) props["apiVersion"] = json::object{{"type", "string"}, {"description", "APIVersion defines the versioned schema of this representation of an object."}};
    if (!props.contains("kind")) props["kind"] = json::object{{"type", "string"}, {"description", "Kind is a string value representing the REST resource this object represents."}};
    if (!props.contains("metadata")) props["metadata"] = json::object{{"type", "object"}, {"description", "Standard object's metadata."}};
    schema["properties"] = props;
    schema["x-kubernetes-group-version-kind"] =
        json::array{json::object{{"group", info.ref.group}, {"version", info.ref.version}, {"kind", info.ref.kind}}};
    // Upstream names it by the reversed group: com.example.v1.Gadget.
    std::string reversed, g = info.ref.group;
    while (!g.empty()) {
      size_t dot = g.rfind('.');
      reversed += (reversed.empty() ? "" : ".") + g.substr(dot == std::string::npos ? 0 : dot + 1);
      g = dot == std::string::npos ? std::string() : g.substr(0, dot);
    }
    (*schemas)[reversed + "." + info.ref.version + "." + info.ref.kind] = std::move(schema);
  }
}

}  // namespace kvb::testcluster
