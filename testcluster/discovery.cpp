// Discovery and OpenAPI v3 documents: what kubectl reads before get/apply.
#include "testcluster/api.h"
#include "testcluster/openapi_builtin.h"

#include <boost/json.hpp>

namespace kvb::testcluster {
namespace json = boost::json;

json::object api_versions_json() {
  return json::object{{"kind", "APIVersions"},
                      {"versions", json::array{"v1"}},
                      {"serverAddressByClientCIDRs", json::array{json::object{{"clientCIDR", "0.0.0.0/0"},
                                                                              {"serverAddress", "127.0.0.1:6443"}}}}};
}

json::object api_group_list_json(const Registry& r) {
  json::array groups;
  std::map<std::string, std::vector<std::string>> versions;
  std::vector<std::string> order;
  for (const auto& [g, v] : r.group_versions()) {
    if (g.empty()) continue;
    if (!versions.count(g)) order.push_back(g);
    versions[g].push_back(v);
  }
  // KubeVirt's subresource group is served by virt-api.
  order.push_back("subresources.kubevirt.io");
  versions["subresources.kubevirt.io"] = {"v1"};
  for (const auto& g : order) {
    json::array vs;
    for (const auto& v : versions[g]) vs.push_back(json::object{{"groupVersion", g + "/" + v}, {"version", v}});
    groups.push_back(json::object{{"name", g},
                                  {"versions", vs},
                                  {"preferredVersion", json::object{{"groupVersion", g + "/" + versions[g][0]},
                                                                    {"version", versions[g][0]}}}});
  }
  return json::object{{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", groups}};
}

std::optional<json::object> api_resource_list_json(const Registry& r, const std::string& group, const std::string& version) {
  json::array list;
  bool any = false;
  for (const auto& info : r.all()) {
    if (!info.served) continue;
    if (info.ref.group != group || info.ref.version != version) continue;
    any = true;
    json::array verbs;
    for (const auto& v : info.verbs) verbs.push_back(json::string(v));
    json::object o{{"name", info.ref.resource},
                   {"singularName", info.singular},
                   {"namespaced", info.ref.namespaced},
                   {"kind", info.ref.kind},
                   {"verbs", verbs}};
    if (!info.short_names.empty()) {
      json::array sn;
      for (const auto& s : info.short_names) sn.push_back(json::string(s));
      o["shortNames"] = sn;
    }
    if (!info.categories.empty()) {
      json::array cats;
      for (const auto& s : info.categories) cats.push_back(json::string(s));
      o["categories"] = cats;
    }
    list.push_back(o);
    for (const auto& sub : info.subresources) {
      json::array sv = sub == "exec" || sub == "portforward" ? json::array{"create", "get"} : sub == "log" ? json::array{"get"} : json::array{"get", "patch", "update"};
      list.push_back(json::object{{"name", info.ref.resource + "/" + sub},
                                  {"singularName", ""},
                                  {"namespaced", info.ref.namespaced},
                                  {"kind", sub == "exec" ? "PodExecOptions" : sub == "portforward" ? "PodPortForwardOptions" : sub == "log" ? "Pod" : info.ref.kind},
                                  {"verbs", sv}});
    }
  }
  if (group == "subresources.kubevirt.io" && version == "v1") {
    any = true;
    for (const char* sub : {"freeze", "unfreeze", "guestosinfo", "pause", "unpause"}) {
      list.push_back(json::object{{"name", std::string("virtualmachineinstances/") + sub},
                                  {"singularName", ""},
                                  {"namespaced", true},
                                  {"kind", "VirtualMachineInstance"},
                                  {"verbs", std::string(sub) == "guestosinfo" ? json::array{"get"} : json::array{"update"}}});
    }
    for (const char* sub : {"start", "stop", "restart"}) {
      list.push_back(json::object{{"name", std::string("virtualmachines/") + sub},
                                  {"singularName", ""},
                                  {"namespaced", true},
                                  {"kind", "VirtualMachine"},
                                  {"verbs", json::array{"update"}}});
    }
  }
  if (!any) return std::nullopt;
  std::string gv = group.empty() ? version : group + "/" + version;
  return json::object{{"kind", "APIResourceList"}, {"apiVersion", "v1"}, {"groupVersion", gv}, {"resources", list}};
}

json::object openapi_index_json(const Registry& r) {
  json::object paths;
  for (const auto& [g, v] : r.group_versions()) {
    std::string p = g.empty() ? "api/" + v : "apis/" + g + "/" + v;
    paths[p] = json::object{{"serverRelativeURL", "/openapi/v3/" + p + "?hash=kvbackup-testcluster"}};
  }
  return json::object{{"paths", paths}};
}

std::optional<json::object> openapi_group_version_json(const Registry& r, const std::string& gv_path) {
  json::object paths;
  bool any = false;
  for (const auto& info : r.all()) {
    if (!info.served) continue;
    std::string p = info.ref.group.empty() ? "api/" + info.ref.version : "apis/" + info.ref.group + "/" + info.ref.version;
    if (p != gv_path) continue;
    any = true;
    json::object gvk{{"group", info.ref.group}, {"version", info.ref.version}, {"kind", info.ref.kind}};
    json::array params{json::object{{"name", "fieldValidation"}, {"in", "query"}, {"schema", json::object{{"type", "string"}}}},
                       json::object{{"name", "fieldManager"}, {"in", "query"}, {"schema", json::object{{"type", "string"}}}},
                       json::object{{"name", "dryRun"}, {"in", "query"}, {"schema", json::object{{"type", "string"}}}}};
    json::object op{{"x-kubernetes-group-version-kind", gvk},
                    {"parameters", params},
                    {"responses", json::object{{"200", json::object{{"description", "OK"}}}}}};
    std::string base = "/" + p + (info.ref.namespaced ? "/namespaces/{namespace}/" : "/") + info.ref.resource;
    paths[base + "/{name}"] = json::object{{"get", op}, {"put", op}, {"patch", op}, {"delete", op}};
    paths[base] = json::object{{"get", op}, {"post", op}};
  }
  if (!any) return std::nullopt;
  json::object schemas;
  add_builtin_schemas(gv_path, schemas);  // the kinds the simulator serves itself (openapi_builtin.h)
  return json::object{{"openapi", "3.0.0"},
                      {"info", json::object{{"title", "Kubernetes"}, {"version", "v1"}}},
                      {"paths", paths},
                      {"components", json::object{{"schemas", std::move(schemas)}}}};
}

}  // namespace kvb::testcluster
