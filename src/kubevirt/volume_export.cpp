#include "kubevirt/volume_export.h"

#include "common/base64.h"
#include "common/random.h"
#include "kube/object.h"
#include "kube/resource.h"
#include "kube/watch.h"
#include "kubevirt/resources.h"

#include <boost/json.hpp>

#include <optional>

namespace kvb::kubevirt {
namespace json = boost::json;

namespace {

std::string secret_name(const std::string& export_name) { return export_name + "-token"; }

json::object labels_json(const std::map<std::string, std::string>& labels) {
  json::object o;
  for (const auto& [k, v] : labels) o[k] = v;
  return o;
}

// "Pending (InUse: pvc in use by pod x)" from the export's Ready condition.
std::string describe_status(const json::object& vme) {
  std::string phase(kube::str_at(vme, {"status", "phase"}));
  std::string s = phase.empty() ? "no status yet" : "phase " + phase;
  if (const auto* conds = kube::array_at(vme, {"status", "conditions"})) {
    for (const auto& c : *conds) {
      if (!c.is_object() || kube::str_at(c, {"type"}) != "Ready") continue;
      std::string reason(kube::str_at(c, {"reason"})), message(kube::str_at(c, {"message"}));
      if (!reason.empty() || !message.empty()) s += " (" + reason + (message.empty() ? "" : ": " + message) + ")";
    }
  }
  return s;
}

}  // namespace

Result<std::string> create_volume_export(kube::Client& c, const ExportRequest& req) {
  std::string token = random_hex(32);
  json::object secret{{"apiVersion", "v1"},
                      {"kind", "Secret"},
                      {"metadata", {{"name", secret_name(req.name)}, {"namespace", req.ns}, {"labels", labels_json(req.labels)}}},
                      {"type", "Opaque"},
                      {"data", {{"token", base64_encode(token)}}}};
  if (auto r = c.create(kube::resources::kSecrets, req.ns, secret); !r) {
    return Error(r.error().code, "cannot create the export token Secret " + req.ns + "/" + secret_name(req.name) + ": " + r.error().message);
  }
  json::object vme{{"apiVersion", kVirtualMachineExports.api_version()},
                   {"kind", kVirtualMachineExports.kind},
                   {"metadata", {{"name", req.name}, {"namespace", req.ns}, {"labels", labels_json(req.labels)}}},
                   {"spec",
                    {{"source", {{"apiGroup", ""}, {"kind", "PersistentVolumeClaim"}, {"name", req.claim}}},
                     {"tokenSecretRef", secret_name(req.name)},
                     {"ttlDuration", req.ttl}}}};
  if (auto r = c.create(kVirtualMachineExports, req.ns, vme); !r) {
    (void)c.remove(kube::resources::kSecrets, req.ns, secret_name(req.name));
    return Error(r.error().code, "cannot create the VirtualMachineExport " + req.ns + "/" + req.name + ": " + r.error().message);
  }
  return token;
}

Result<RawLink> wait_raw_link(std::shared_ptr<kube::Client> c, const ExportRequest& req, const std::string& token,
                              std::chrono::milliseconds timeout, std::stop_token stop) {
  kube::InformerOptions o;
  o.field_selector = "metadata.name=" + req.name;
  auto informer = kube::Informer::start(c, kVirtualMachineExports, req.ns, o);
  const std::string key = req.ns + "/" + req.name;
  auto settled = [](const json::object* vme) {
    if (!vme) return false;
    auto phase = kube::str_at(*vme, {"status", "phase"});
    return phase == "Ready" || phase == "Skipped";
  };
  auto seen = informer->wait_for(key, settled, std::chrono::steady_clock::now() + timeout, std::move(stop));
  std::optional<json::object> last_seen = informer->get(key);
  informer->stop();
  if (!seen) {
    if (seen.error().code == Errc::kTimeout) {
      return Error(Errc::kTimeout, "export " + req.ns + "/" + req.name + " of claim " + req.claim + " was not Ready within " +
                                       std::to_string(timeout.count() / 1000) + " s: " +
                                       (last_seen ? describe_status(*last_seen) : std::string("not found")));
    }
    if (seen.error().code == Errc::kCancelled) {
      return Error(Errc::kCancelled, "cancelled while waiting for export " + req.ns + "/" + req.name);
    }
    return seen.error();
  }
  const json::object& vme = *seen;
  if (kube::str_at(vme, {"status", "phase"}) == "Skipped") {
    return Error(Errc::kInvalid, "export " + req.ns + "/" + req.name + " was skipped: " + describe_status(vme));
  }
  const bool external = kube::array_at(vme, {"status", "links", "external", "volumes"}) != nullptr;
  const char* which = external ? "external" : "internal";
  const auto* vols = kube::array_at(vme, {"status", "links", which, "volumes"});
  if (!vols) {
    return Error(Errc::kNotFound, "export " + req.ns + "/" + req.name + " is Ready but has neither an external nor an internal link");
  }
  for (const auto& v : *vols) {
    if (kube::str_at(v, {"name"}) != req.claim) continue;
    if (const auto* formats = kube::array_at(v, {"formats"})) {
      for (const auto& f : *formats) {
        if (kube::str_at(f, {"format"}) != "raw") continue;
        RawLink link;
        link.url = std::string(kube::str_at(f, {"url"}));
        link.ca_pem = std::string(kube::str_at(vme, {"status", "links", which, "cert"}));
        link.token = token;
        link.external = external;
        link.exporter_pod = std::string(kube::str_at(vme, {"status", "serviceName"}));
        if (link.exporter_pod.empty()) link.exporter_pod = "virt-export-" + req.name;
        return link;
      }
    }
    return Error(Errc::kInvalid, "export " + req.ns + "/" + req.name + " offers no raw format for claim " + req.claim +
                                     " (only Block claims and claims with CDI's kubevirt content type have one)");
  }
  return Error(Errc::kNotFound, "export " + req.ns + "/" + req.name + " has no link for claim " + req.claim);
}

Status remove_volume_export(kube::Client& c, const std::string& ns, const std::string& name) {
  Status result = ok();
  if (auto r = c.remove(kVirtualMachineExports, ns, name); !r && r.error().code != Errc::kNotFound) result = r.error();
  if (auto r = c.remove(kube::resources::kSecrets, ns, secret_name(name)); !r && r.error().code != Errc::kNotFound && result) {
    result = r.error();
  }
  return result;
}

}  // namespace kvb::kubevirt
