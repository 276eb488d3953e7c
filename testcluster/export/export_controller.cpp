#include "testcluster/export/export_controller.h"

#include "common/base64.h"
#include "common/duration.h"
#include "common/time.h"
#include "kube/object.h"
#include "testcluster/csi.h"

#include <boost/json.hpp>

#include <netinet/in.h>
#include <random>
#include <sys/socket.h>
#include <unistd.h>

namespace kvb::testcluster {
namespace json = boost::json;
using kube::resources::kPersistentVolumeClaims;
using kube::resources::kPods;
using kube::resources::kSecrets;

namespace {

std::string key(const std::string& ns, const std::string& name) { return ns + "/" + name; }

std::string random_token() {
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::random_device rd;
  std::string t;
  for (int i = 0; i < 20; ++i) t += kChars[rd() % (sizeof kChars - 1)];
  return t;
}

json::object condition(const std::string& type, bool status, const std::string& reason, const std::string& message,
                       const json::object& old_status, const std::string& now) {
  std::string since = now;
  if (const auto* conds = kube::array_at(old_status, {"conditions"})) {
    for (const auto& c : *conds) {
      if (kube::str_at(c, {"type"}) == type && kube::str_at(c, {"status"}) == (status ? "True" : "False")) {
        since = std::string(kube::str_at(c, {"lastTransitionTime"}));
      }
    }
  }
  return json::object{{"type", type},           {"status", status ? "True" : "False"}, {"reason", reason},
                      {"message", message},     {"lastTransitionTime", since},         {"lastProbeTime", nullptr}};
}

}  // namespace

ExportController::ExportController(Cluster& c) : c_(c) {
  auto s = ExportServer::start(c.ca());
  if (s) {
    server_ = std::move(*s);
  } else {
    server_error_ = s.error().message;
  }
  // The unreachable exporter: a port bound (so no one else gets it) where nothing listens.
  closed_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (closed_fd_ >= 0 && ::bind(closed_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(closed_fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    closed_url_ = "https://127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  }
}

ExportController::~ExportController() {
  for (auto& [k, t] : ttl_timers_) t->cancel();
  if (server_) server_->stop();
  if (closed_fd_ >= 0) ::close(closed_fd_);
}

void ExportController::arm_restart(int64_t after_bytes, int64_t times) {
  if (server_) server_->arm_restart(after_bytes, times);
}

json::object ExportController::stats() const {
  json::object o = server_ ? server_->stats() : json::object{{"requests", json::array()}, {"restarts", 0}};
  o["url"] = server_ ? server_->url() : "";
  if (!server_error_.empty()) o["error"] = server_error_;
  return o;
}

void ExportController::clear_stats() {
  if (server_) server_->clear_stats();
}

void ExportController::on_change(const StoreEvent& e) {
  const auto& r = e.resource->ref.resource;
  std::string ns(kube::namespace_of(e.object));
  if (r == "virtualmachineexports") {
    std::string name(kube::name_of(e.object));
    if (e.type == "DELETED") {
      exports_.erase(key(ns, name));
      if (auto it = ttl_timers_.find(key(ns, name)); it != ttl_timers_.end()) {
        it->second->cancel();
        ttl_timers_.erase(it);
      }
      faulted_.erase(key(ns, name));
      if (server_) server_->withdraw(ns, name);
      remove_exporter_pod(ns, name);
      return;
    }
    exports_.insert(key(ns, name));
    return reconcile(ns, name);
  }
  if (r == "pods" || r == "persistentvolumeclaims" || r == "secrets" || r == "virtualmachines" ||
      r == "virtualmachineinstances") {
    reconcile_namespace(ns);
  }
}

void ExportController::reconcile_namespace(const std::string& ns) {
  std::vector<std::string> names;
  for (auto it = exports_.lower_bound(ns + "/"); it != exports_.end() && it->compare(0, ns.size() + 1, ns + "/") == 0; ++it) {
    names.push_back(it->substr(ns.size() + 1));
  }
  for (const auto& n : names) reconcile(ns, n);
}

std::string ExportController::exporter_pod_name(const std::string& name) { return "virt-export-" + name; }

void ExportController::ensure_exporter_pod(const std::string& ns, const std::string& name, const std::string& uid) {
  const std::string pod = exporter_pod_name(name);
  if (c_.store().find(c_.resource(kPods), ns, pod)) return;
  std::string image = "quay.io/kubevirt/virt-exportserver:v" + c_.scenario().kubevirt_version + ".0";
  Object p{{"apiVersion", "v1"},
           {"kind", "Pod"},
           {"metadata", json::object{{"name", pod},
                                     {"namespace", ns},
                                     {"labels", json::object{{"kubevirt.io.virt-export-service", pod}}},
                                     {"ownerReferences", json::array{json::object{{"apiVersion", "export.kubevirt.io/v1beta1"},
                                                                                 {"kind", "VirtualMachineExport"},
                                                                                 {"name", name},
                                                                                 {"uid", uid},
                                                                                 {"controller", true},
                                                                                 {"blockOwnerDeletion", true}}}}}},
           {"spec", json::object{{"containers", json::array{json::object{
                                     {"name", "exportserver"},
                                     {"image", image},
                                     {"ports", json::array{json::object{{"name", "export"}, {"containerPort", 8443}, {"protocol", "TCP"}}}}}}},
                                 {"restartPolicy", "OnFailure"}}}};
  (void)c_.store().create(c_.resource(kPods), ns, p);
}

void ExportController::remove_exporter_pod(const std::string& ns, const std::string& name) {
  if (c_.store().find(c_.resource(kPods), ns, exporter_pod_name(name))) {
    (void)c_.store().remove(c_.resource(kPods), ns, exporter_pod_name(name));
  }
}

bool ExportController::claim_in_use(const std::string& ns, const std::string& claim) const {
  for (const Object* pod : c_.store().all(c_.resource(kPods), ns)) {
    std::string phase(kube::str_at(*pod, {"status", "phase"}));
    if (phase == "Succeeded" || phase == "Failed") continue;
    if (const auto* vols = kube::array_at(*pod, {"spec", "volumes"})) {
      for (const auto& v : *vols) {
        if (kube::str_at(v, {"persistentVolumeClaim", "claimName"}) == claim) return true;
      }
    }
  }
  return false;
}

std::string ExportController::ensure_token(const Object& vme, const std::string& ns, const std::string& name,
                                           std::string& secret_name) {
  secret_name = std::string(kube::str_at(vme, {"spec", "tokenSecretRef"}));
  bool generated = secret_name.empty();
  if (generated) secret_name = "export-token-" + name;
  const Object* secret = c_.store().find(c_.resource(kSecrets), ns, secret_name);
  if (!secret && generated) {
    json::value v(vme);
    Object s{{"apiVersion", "v1"},
             {"kind", "Secret"},
             {"metadata", json::object{{"name", secret_name},
                                       {"namespace", ns},
                                       {"ownerReferences", json::array{json::object{{"apiVersion", "export.kubevirt.io/v1beta1"},
                                                                                   {"kind", "VirtualMachineExport"},
                                                                                   {"name", name},
                                                                                   {"uid", kube::uid_of(v)},
                                                                                   {"controller", true},
                                                                                   {"blockOwnerDeletion", true}}}}}},
             {"type", "Opaque"},
             {"data", json::object{{"token", base64_encode(random_token())}}}};
    (void)c_.store().create(c_.resource(kSecrets), ns, s);
    secret = c_.store().find(c_.resource(kSecrets), ns, secret_name);
  }
  if (!secret) return {};
  auto token = base64_decode(kube::str_at(*secret, {"data", "token"}));
  return token ? *token : std::string();
}

void ExportController::reconcile(const std::string& ns, const std::string& name) {
  const Object* found = c_.store().find(c_.resource(res::kVirtualMachineExports), ns, name);
  if (!found) return;
  Object vme = *found;  // the store may change under the calls below
  json::object old_status = vme.contains("status") && vme["status"].is_object() ? vme["status"].as_object() : json::object();
  std::string now = format_rfc3339(WallClock::now());
  std::string kind(kube::str_at(vme, {"spec", "source", "kind"}));
  std::string source(kube::str_at(vme, {"spec", "source", "name"}));

  // The TTL: deleted at creationTimestamp + ttlDuration.
  std::string ttl_text(kube::str_at(vme, {"spec", "ttlDuration"}));
  auto ttl = parse_duration(ttl_text.empty() ? "2h" : ttl_text);
  if (!ttl) ttl = std::chrono::nanoseconds(std::chrono::hours(2));
  auto created = parse_rfc3339(kube::str_at(vme, {"metadata", "creationTimestamp"}));
  WallTime expires = (created ? *created : WallClock::now()) + std::chrono::duration_cast<WallClock::duration>(*ttl);
  if (!ttl_timers_.count(key(ns, name))) {
    auto left = expires - WallClock::now();
    ttl_timers_[key(ns, name)] = c_.loop().after(std::max(std::chrono::nanoseconds(0), std::chrono::duration_cast<std::chrono::nanoseconds>(left)),
                                                 [this, ns, name] {
                                                   ttl_timers_.erase(key(ns, name));
                                                   (void)c_.store().remove(c_.resource(res::kVirtualMachineExports), ns, name);
                                                 });
  }

  std::string secret_name;
  std::string token = ensure_token(vme, ns, name, secret_name);
  std::string service = "virt-export-" + name;
  json::object st{{"tokenSecretRef", secret_name}, {"ttlExpirationTime", format_rfc3339(expires)}, {"serviceName", service}};

  std::vector<std::string> claims;
  std::string reason, message;  // why not Ready
  bool was_ready = kube::str_at(old_status, {"phase"}) == "Ready";
  if (kind == "PersistentVolumeClaim") {
    claims.push_back(source);
  } else if (kind == "VirtualMachine") {
    const Object* vm = c_.store().find(c_.resource(res::kVirtualMachines), ns, source);
    if (!vm) {
      reason = "VMNotFound", message = "VirtualMachine " + ns + "/" + source + " not found";
    } else {
      if (c_.store().find(c_.resource(res::kVirtualMachineInstances), ns, source)) {
        reason = "inUse", message = "VirtualMachine " + ns + "/" + source + " is running: stop it to export its volumes";
      }
      if (const auto* vols = kube::array_at(*vm, {"spec", "template", "spec", "volumes"})) {
        for (const auto& v : *vols) {
          std::string c(kube::str_at(v, {"dataVolume", "name"}));
          if (c.empty()) c = std::string(kube::str_at(v, {"persistentVolumeClaim", "claimName"}));
          if (!c.empty()) claims.push_back(c);
        }
      }
    }
  } else {
    reason = "InvalidSource";
    message = "source kind " + (kind.empty() ? std::string("(none)") : kind) +
              " is not supported: export a PersistentVolumeClaim (e.g. one restored from the snapshot), a "
              "VirtualMachineSnapshot or a VirtualMachine";
  }
  bool claims_bound = reason.empty() || reason == "inUse";
  std::string pvc_reason = "Bound", pvc_message;
  json::array ext_vols, int_vols;
  // Injected faults are decided at an export's first reconcile and hold for its life.
  if (!faulted_.count(key(ns, name))) {
    InjectedFaults f;
    f.unreachable = !closed_url_.empty() && c_.faults().export_fault("export-unreachable", ns, name);
    f.wrong_token = c_.faults().export_fault("export-wrong-token", ns, name) != nullptr;
    faulted_[key(ns, name)] = f;
  }
  const InjectedFaults injected = faulted_.count(key(ns, name)) ? faulted_[key(ns, name)] : InjectedFaults{};
  std::string base = injected.unreachable ? closed_url_ : server_ ? server_->url() : "";
  for (const auto& claim : claims) {
    const Object* pvc = c_.store().find(c_.resource(kPersistentVolumeClaims), ns, claim);
    if (!pvc || kube::str_at(*pvc, {"status", "phase"}) != "Bound") {
      claims_bound = false;
      pvc_reason = pvc ? "Pending" : "NotFound";
      pvc_message = "pvc " + ns + "/" + claim + (pvc ? " is not Bound" : " not found");
      if (reason.empty()) reason = pvc ? "pvcPending" : "pvcNotFound", message = pvc_message;
      continue;
    }
    if (reason.empty() && claim_in_use(ns, claim)) reason = "inUse", message = "pvc " + ns + "/" + claim + " is in use";
    bool raw = kube::str_at(*pvc, {"spec", "volumeMode"}) == "Block" ||
               kube::annotation_of(*pvc, "cdi.kubevirt.io/storage.contentType") == "kubevirt";
    for (bool external : {true, false}) {
      std::string prefix = external ? base + ExportServer::volumes_path(ns, name) + claim
                                    : "https://" + service + "." + ns + ".svc/volumes/" + claim;
      json::array formats;
      if (raw) {
        formats = {json::object{{"format", "raw"}, {"url", prefix + "/disk.img"}},
                   json::object{{"format", "gzip"}, {"url", prefix + "/disk.img.gz"}}};
      } else {
        formats = {json::object{{"format", "dir"}, {"url", prefix + "/dir"}},
                   json::object{{"format", "tar.gz"}, {"url", prefix + "/disk.tar.gz"}}};
      }
      (external ? ext_vols : int_vols).push_back(json::object{{"name", claim}, {"formats", formats}});
    }
  }
  if (reason.empty() && token.empty()) reason = "secretNotFound", message = "token Secret " + ns + "/" + secret_name + " has no key token";
  if (reason.empty() && !server_) reason = "exporterFailed", message = "the export server did not start: " + server_error_;

  std::string ca = c_.ca().cert_pem;
  if (reason.empty()) {
    ExportEntry entry;
    entry.token = injected.wrong_token ? token + "-rotated" : token;
    for (const auto& claim : claims) {
      (void)c_.csi().sync_bytes(ns, claim);
      entry.volumes[claim] = ExportedVolume{c_.csi().volume_store().claim_path(ns, claim)};
    }
    server_->publish(ns, name, std::move(entry));
    ensure_exporter_pod(ns, name, std::string(kube::uid_of(json::value(vme))));
    st["phase"] = "Ready";
    // links.external exists only where an Ingress or Route reaches virt-exportproxy.
    json::object links{{"internal", json::object{{"cert", ca}, {"volumes", int_vols}}}};
    if (!c_.faults().export_no_ingress(ns, name)) links["external"] = json::object{{"cert", ca}, {"volumes", ext_vols}};
    st["links"] = links;
    st["conditions"] = json::array{condition("Ready", true, "podReady", "", old_status, now),
                                   condition("PVCReady", true, "Bound", "", old_status, now)};
  } else {
    if (server_) server_->withdraw(ns, name);
    remove_exporter_pod(ns, name);
    bool gone = was_ready && (reason == "pvcNotFound" || reason == "VMNotFound");
    st["phase"] = gone || kube::str_at(old_status, {"phase"}) == "Terminated" ? "Terminated" : "Pending";
    st["conditions"] = json::array{condition("Ready", false, reason, message, old_status, now),
                                   condition("PVCReady", claims_bound, claims_bound ? "Bound" : pvc_reason, pvc_message,
                                             old_status, now)};
  }
  (void)c_.store().mutate(c_.resource(res::kVirtualMachineExports), ns, name, [&](Object& o) { o["status"] = st; });
}

}  // namespace kvb::testcluster
