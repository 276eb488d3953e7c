#include "kubevirt/cdi_upload.h"

#include "kube/object.h"
#include "kube/watch.h"
#include "kubevirt/resources.h"

#include <boost/json.hpp>

#include <algorithm>

namespace kvb::kubevirt {
namespace json = boost::json;

const kube::ResourceRef kCdiConfigs{"cdi.kubevirt.io", "v1beta1", "cdiconfigs", "CDIConfig", false};
const kube::ResourceRef kUploadTokenRequests{"upload.cdi.kubevirt.io", "v1beta1", "uploadtokenrequests", "UploadTokenRequest", true};

json::object upload_datavolume(const UploadVolume& v) {
  json::object labels, annotations;
  for (const auto& [k, val] : v.labels) labels[k] = val;
  for (const auto& [k, val] : v.annotations) annotations[k] = val;
  if (v.wait_for_first_consumer) annotations[kAnnBindImmediate] = "true";
  json::array modes;
  for (const auto& m : v.access_modes) modes.push_back(json::string(m));
  if (modes.empty()) modes.push_back("ReadWriteOnce");
  json::object storage{{"accessModes", modes},
                       {"resources", json::object{{"requests", json::object{{"storage", std::to_string(v.bytes)}}}}}};
  if (!v.storage_class.empty()) storage["storageClassName"] = v.storage_class;
  if (!v.volume_mode.empty()) storage["volumeMode"] = v.volume_mode;
  json::object meta{{"name", v.name}, {"namespace", v.ns}};
  if (!labels.empty()) meta["labels"] = labels;
  if (!annotations.empty()) meta["annotations"] = annotations;
  // spec.pvc, not spec.storage: the size is exact (storage may add file-system overhead).
  return json::object{{"apiVersion", kDataVolumes.api_version()},
                      {"kind", kDataVolumes.kind},
                      {"metadata", meta},
                      {"spec", json::object{{"source", json::object{{"upload", json::object{}}}}, {"pvc", storage}}}};
}

Result<std::string> upload_proxy_url(kube::Client& c) {
  auto cfg = c.get(kCdiConfigs, "", "config");
  if (!cfg) {
    if (cfg.error().code == Errc::kNotFound) {
      return Error(Errc::kNotFound, "CDIConfig \"config\" not found: the cluster has no CDI (containerized-data-importer), "
                                    "which a restore from the repository needs; or give --upload-proxy-url");
    }
    return cfg.error().with_context("reading CDIConfig \"config\"");
  }
  std::string url(kube::str_at(*cfg, {"status", "uploadProxyURL"}));
  if (url.empty()) {
    return Error(Errc::kNotFound, "CDIConfig \"config\" has no status.uploadProxyURL (no Ingress or Route reaches "
                                  "cdi-uploadproxy): give --upload-proxy-url");
  }
  if (url.find("://") == std::string::npos) url = "https://" + url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

Result<Secret> request_upload_token(kube::Client& c, const std::string& ns, const std::string& claim) {
  json::object req{{"apiVersion", kUploadTokenRequests.api_version()},
                   {"kind", kUploadTokenRequests.kind},
                   {"metadata", json::object{{"name", claim}, {"namespace", ns}}},
                   {"spec", json::object{{"pvcName", claim}}}};
  auto r = c.create(kUploadTokenRequests, ns, req);
  if (!r) return r.error().with_context("UploadTokenRequest for claim " + ns + "/" + claim);
  std::string token(kube::str_at(*r, {"status", "token"}));
  if (token.empty()) return Error(Errc::kInternal, "UploadTokenRequest for claim " + ns + "/" + claim + " returned no status.token");
  return Secret(std::move(token));
}

Result<json::object> wait_datavolume_phase(std::shared_ptr<kube::Client> c, const std::string& ns, const std::string& name,
                                           const std::vector<std::string>& phases, std::chrono::milliseconds timeout,
                                           std::stop_token stop) {
  std::string last = "(none)";
  bool failed = false;
  auto r = kube::wait_for_object(
      c, kDataVolumes, ns, name,
      [&](const json::object* o) {
        if (!o) return false;
        last = std::string(kube::str_at(*o, {"status", "phase"}));
        failed = last == "Failed";
        return failed || std::find(phases.begin(), phases.end(), last) != phases.end();
      },
      timeout, stop);
  if (!r) return r.error().with_context("waiting for DataVolume " + ns + "/" + name + " (last phase " + last + ")");
  if (failed) return Error(Errc::kInternal, "DataVolume " + ns + "/" + name + " is Failed");
  return r;
}

}  // namespace kvb::kubevirt
