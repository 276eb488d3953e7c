#include "testcluster/cluster.h"

#include "common/base64.h"
#include "common/random.h"
#include "testcluster/snapshot_metadata_server.h"
#include "kube/object.h"
#include "testcluster/controller_admission.h"
#include "testcluster/api.h"
#include "testcluster/cdi.h"
#include "testcluster/cdi_upload.h"
#include "testcluster/core_controllers.h"
#include "testcluster/csi.h"
#include "testcluster/exec_service.h"
#include "testcluster/export/export_controller.h"
#include "testcluster/kubevirt.h"
#include "testcluster/qemu_vms.h"

#include <boost/json.hpp>

#include <deque>
#include <random>

namespace kvb::testcluster {
namespace json = boost::json;

Cluster::Cluster(Scenario scenario, ClusterOptions options) : scenario_(std::move(scenario)), options_(std::move(options)) {}

Cluster::~Cluster() { stop(); }

void Cluster::stop() {
  if (server_) server_->stop();
  for (auto& s : cbt_) s->stop();  // its calls use the loop: before the loop stops
  uninstall_cdi_upload(*this);  // its connection threads use the loop: before the loop stops
  loop_.run_sync([this] {
    api_.reset();
    exec_.reset();
    exports_.reset();
    qemu_.reset();  // thaws and quits every real guest, joins their threads
  });
  loop_.stop();
}

const ResourceInfo& Cluster::resource(const kube::ResourceRef& ref) const {
  const ResourceInfo* r = registry_.find(ref.group, ref.version, ref.resource);
  if (!r) std::abort();  // a resource the simulator itself names must be registered
  return *r;
}

std::string Cluster::url() const { return server_->url(); }

std::string Cluster::kubeconfig() const {
  std::string ca = base64_encode(ca_.cert_pem);
  std::string out = "apiVersion: v1\nkind: Config\nclusters:\n- name: kvbackup-testcluster\n  cluster:\n    server: " + url() +
                    "\n    certificate-authority-data: " + ca + "\nusers:\n- name: admin\n  user:\n    token: " + admin_token_ + "\n";
  for (const auto& t : scenario_.tokens) out += "- name: " + t.user + "\n  user:\n    token: " + t.token + "\n";
  out += "contexts:\n- name: kvbackup-testcluster\n  context:\n    cluster: kvbackup-testcluster\n    user: admin\n"
         "    namespace: default\n";
  for (const auto& t : scenario_.tokens) {
    out += "- name: " + t.user + "\n  context:\n    cluster: kvbackup-testcluster\n    user: " + t.user + "\n";
  }
  out += "current-context: kvbackup-testcluster\npreferences: {}\n";
  return out;
}

namespace {
// The component that reports events about each kind in a real cluster.
std::string event_source(std::string_view kind) {
  if (kind == "PersistentVolumeClaim" || kind == "PersistentVolume") return "persistentvolume-controller";
  if (kind == "VolumeSnapshot" || kind == "VolumeSnapshotContent") return "snapshot-controller";
  if (kind == "DataVolume") return "datavolume-controller";
  if (kind == "VirtualMachine") return "virtualmachine-controller";
  if (kind == "Pod") return "kubelet";
  return "virt-handler";  // VirtualMachineInstance: the guest's events
}
}  // namespace

void Cluster::record_event(const Object& about, const std::string& type, const std::string& reason, const std::string& message) {
  json::value v(about);
  std::string ns(kube::namespace_of(v));
  std::string now = format_rfc3339(WallClock::now());
  Object ev{{"apiVersion", "v1"},
            {"kind", "Event"},
            {"metadata", json::object{{"generateName", std::string(kube::name_of(v)) + "."}, {"namespace", ns.empty() ? "default" : ns}}},
            {"involvedObject", json::object{{"apiVersion", kube::str_at(v, {"apiVersion"})},
                                            {"kind", kube::str_at(v, {"kind"})},
                                            {"name", kube::name_of(v)},
                                            {"namespace", ns},
                                            {"uid", kube::uid_of(v)}}},
            {"reason", reason},
            {"message", message},
            {"type", type},
            {"count", 1},
            {"firstTimestamp", now},
            {"lastTimestamp", now},
            {"source", json::object{{"component", event_source(kube::str_at(v, {"kind"}))}}}};
  (void)store_->create(resource(kube::resources::kEvents), ns.empty() ? "default" : ns, ev);
}

Status Cluster::populate() {
  auto& store = *store_;
  KVB_CHECK(core_->populate());
  auto ns_res = resource(kube::resources::kNamespaces);
  std::vector<std::pair<std::string, std::map<std::string, std::string>>> namespaces{{"default", {}}, {"kube-system", {}}};
  for (const auto& n : scenario_.namespaces) namespaces.emplace_back(n.name, n.labels);
  for (const auto& [name, labels] : namespaces) {
    json::object l{{"kubernetes.io/metadata.name", name}};
    for (const auto& [k, v] : labels) l[k] = v;
    auto r = store.create(ns_res, "", Object{{"metadata", json::object{{"name", name}, {"labels", l}}},
                                             {"status", json::object{{"phase", "Active"}}}});
    if (!r && r.error().code != Errc::kAlreadyExists) return r.error();
  }
  if (scenario_.storage_classes.empty()) scenario_.storage_classes.push_back({"standard", "csi.testcluster.kvbackup.io"});
  if (scenario_.snapshot_classes.empty()) {
    SnapshotClassSpec sc;
    sc.name = "standard-snapshot";
    sc.driver = scenario_.storage_classes.front().provisioner;
    scenario_.snapshot_classes.push_back(sc);
  }
  bool first = true;
  for (const auto& sc : scenario_.storage_classes) {
    json::object meta{{"name", sc.name}};
    if (first) meta["annotations"] = json::object{{"storageclass.kubernetes.io/is-default-class", "true"}};
    first = false;
    KVB_CHECK(store.create(resource(kube::resources::kStorageClasses), "",
                           Object{{"metadata", meta}, {"provisioner", sc.provisioner}, {"reclaimPolicy", "Delete"},
                                  {"volumeBindingMode", "Immediate"}, {"allowVolumeExpansion", true}}));
  }
  for (const auto& vsc : scenario_.snapshot_classes) {
    json::object meta{{"name", vsc.name}};
    if (vsc.is_default) meta["annotations"] = json::object{{"snapshot.storage.kubernetes.io/is-default-class", "true"}};
    KVB_CHECK(store.create(resource(kube::resources::kVolumeSnapshotClasses), "",
                           Object{{"metadata", meta}, {"driver", vsc.driver}, {"deletionPolicy", vsc.deletion_policy}}));
    if (vsc.snapshot_metadata_audience.empty()) continue;
    bool served = false;
    for (const auto& s : cbt_) served = served || s->driver() == vsc.driver;
    if (served) continue;
    KVB_TRY(auto server, SnapshotMetadataServer::start(*this, vsc.driver, vsc.snapshot_metadata_audience));
    KVB_CHECK(store.create(resource(res::kSnapshotMetadataServices), "",
                           Object{{"metadata", json::object{{"name", vsc.driver}}},
                                  {"spec", json::object{{"address", server->address()},
                                                        {"audience", vsc.snapshot_metadata_audience},
                                                        {"caCert", base64_encode(ca_.cert_pem)}}}}));
    cbt_.push_back(std::move(server));
  }
  for (const auto& n : scenario_.namespaces) {
    for (const auto& vm : n.vms) {
      for (int i = 0; i < vm.count; ++i) {
        std::string name = vm.count == 1 ? vm.name : vm.name + "-" + std::to_string(i);
        KVB_CHECK(kubevirt_->create_vm(n.name, vm, name).has_value()
                      ? ok()
                      : Status(Error(Errc::kInvalidArgument, "scenario: VM " + n.name + "/" + name + ": could not be created")));
      }
    }
    for (const auto& p : n.pods) {
      json::array containers;
      for (const auto& c : p.containers) containers.push_back(json::object{{"name", c.name}, {"image", c.image}});
      json::object labels;
      for (const auto& [k, v] : p.labels) labels[k] = v;
      KVB_CHECK(store.create(resource(kube::resources::kPods), n.name,
                             Object{{"metadata", json::object{{"name", p.name}, {"namespace", n.name}, {"labels", labels}}},
                                    {"spec", json::object{{"containers", containers}, {"nodeName", "node01"}}},
                                    {"status", json::object{{"phase", p.phase}}}}));
    }
  }
  for (const auto& f : scenario_.faults) {
    auto added = faults_.add(f, "scenario faults");
    if (!added) return added.error();
    if (added->type == "export-restart") exports_->arm_restart(added->after_bytes, added->count);
  }
  return ok();
}

Result<std::unique_ptr<Cluster>> Cluster::start(Scenario scenario, ClusterOptions options) {
  std::unique_ptr<Cluster> c(new Cluster(std::move(scenario), std::move(options)));
  auto ca = make_ca("kvbackup-testcluster-ca");
  if (!ca) return ca.error();
  c->ca_ = *ca;
  CertSpec spec;
  spec.common_name = "kube-apiserver";
  spec.dns_names = {"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"};
  spec.ip_addresses = {"127.0.0.1", "::1"};
  auto cert = issue_certificate(c->ca_, spec);
  if (!cert) return cert.error();
  c->admin_token_ = c->options_.admin_token;
  if (c->admin_token_.empty()) c->admin_token_ = random_hex(40);
  if (c->options_.state_dir.empty()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kvbackup-testcluster-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) return Error(Errc::kIo, "cannot create a state directory under /tmp");
    c->options_.state_dir = tmpl;
  }
  Status populated = ok();
  Cluster* cp = c.get();
  c->loop_.run_sync([cp, &populated] {
    cp->store_ = std::make_unique<Store>(cp->registry_);
    std::filesystem::path image_dir = cp->options_.guest_image_dir;
    if (image_dir.empty()) image_dir = guest::GuestImage::default_dir();
    cp->qemu_ = std::make_unique<QemuVms>(cp->loop_, image_dir);
    cp->kubevirt_ = std::make_unique<KubeVirt>(*cp);
    cp->csi_ = std::make_unique<Csi>(*cp);
    cp->cdi_ = std::make_unique<Cdi>(*cp);
    cp->store_->set_admission(admit_controller_kinds);
    cp->exec_ = std::make_unique<ExecService>(*cp);
    install_cdi_upload(*cp);
    cp->exports_ = std::make_unique<ExportController>(*cp);
    cp->api_ = std::make_unique<Api>(*cp);
    cp->core_ = std::make_unique<CoreControllers>(*cp);
    cp->store_->set_defaulter([cp](const ResourceInfo& r, Object& o, const Object* old) { cp->core_->apply_defaults(r, o, old); });
    // Controllers react to every change; nested changes queue up and are drained
    // in order, so each API write returns with the cluster already settled.
    auto pending = std::make_shared<std::deque<StoreEvent>>();
    auto draining = std::make_shared<bool>(false);
    cp->store_->subscribe([cp, pending, draining](const StoreEvent& e) {
      pending->push_back(e);
      if (*draining) return;
      *draining = true;
      while (!pending->empty()) {
        StoreEvent ev = std::move(pending->front());
        pending->pop_front();
        cp->kubevirt_->on_change(ev);
        cp->csi_->on_change(ev);
        cp->cdi_->on_change(ev);
        if (auto* u = find_cdi_upload(*cp)) u->on_change(ev);
        cp->core_->on_change(ev);
        if (cp->exports_) cp->exports_->on_change(ev);
      }
      *draining = false;
    });
    populated = cp->populate();
  });
  if (!populated) return populated.error();
  ServerOptions so;
  so.listen = c->options_.listen;
  so.cert_pem = cert->cert_pem;
  so.key_pem = cert->key_pem;
  so.handler = [cp](ServerRequest&& req, std::shared_ptr<Responder> r) {
    if (cp->api_) cp->api_->handle(std::move(req), std::move(r));
  };
  auto server = HttpServer::start(c->loop_, so);
  if (!server) return server.error();
  c->server_ = std::move(*server);
  KVB_CHECK(cdi_upload(*c).start(c->ca_));
  return c;
}

}  // namespace kvb::testcluster
