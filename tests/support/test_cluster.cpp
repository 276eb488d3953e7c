#include "tests/support/test_cluster.h"

#include "common/atomic_file.h"
#include "common/base64.h"
#include "kube/object.h"
#include "kube/resource.h"
#include "kube/watch.h"

#include <boost/json.hpp>

#include <stdexcept>

namespace kvb::testing {
namespace json = boost::json;

TestCluster::TestCluster(const std::string& scenario_yaml) {
  auto scenario = testcluster::parse_scenario(scenario_yaml, "test scenario");
  if (!scenario) throw std::runtime_error(scenario.error().describe());
  testcluster::ClusterOptions o;
  o.state_dir = dir_.path() / "state";
  auto c = testcluster::Cluster::start(std::move(*scenario), o);
  if (!c) throw std::runtime_error(c.error().describe());
  cluster_ = std::move(*c);
  kubeconfig_ = dir_.path() / "kubeconfig";
  if (auto st = write_file_atomic(kubeconfig_, cluster_->kubeconfig(), 0600); !st) {
    throw std::runtime_error(st.error().describe());
  }
  auto client = kube::Client::create(rest_config());
  if (!client) throw std::runtime_error(client.error().describe());
  client_ = *client;
}

TestCluster::~TestCluster() {
  client_.reset();
  cluster_->stop();
}

kube::RestConfig TestCluster::rest_config() const {
  kube::RestConfig rc;
  rc.cluster.server = cluster_->url();
  rc.cluster.ca_pem = cluster_->ca().cert_pem;
  rc.cluster.ca_origin = "test cluster CA";
  rc.user.token = Secret(cluster_->admin_token());
  rc.origin = kubeconfig_.string();
  return rc;
}

json::object TestCluster::inspect(const std::string& method, const std::string& path, const std::string& body) {
  kube::HttpRequest req;
  req.method = method;
  req.target = path;
  req.body = body;
  if (!body.empty()) req.headers.emplace_back("Content-Type", "application/json");
  auto resp = client_->request(req);
  if (!resp) throw std::runtime_error(resp.error().describe());
  return json::parse(resp->body).as_object();
}

json::object TestCluster::timeline() { return inspect("GET", "/testcluster/v1/timeline"); }
json::object TestCluster::vms() { return inspect("GET", "/testcluster/v1/vms"); }
json::object TestCluster::volumes() { return inspect("GET", "/testcluster/v1/volumes"); }
json::object TestCluster::volumes_with_sha256(const std::string& query) {
  return inspect("GET", "/testcluster/v1/volumes?sha256=true" + (query.empty() ? std::string() : "&" + query));
}

std::string TestCluster::claim_sha256(const std::string& ns, const std::string& claim) {
  const json::object doc = volumes_with_sha256("namespace=" + ns + "&pvc=" + claim);
  for (const auto& v : doc.at("volumes").as_array()) {
    if (kube::str_at(v, {"namespace"}) == ns && kube::str_at(v, {"pvc"}) == claim) return std::string(kube::str_at(v, {"sha256"}));
  }
  return {};
}

std::string TestCluster::snapshot_sha256(const std::string& ns, const std::string& volume_snapshot) {
  const json::object doc = volumes_with_sha256("namespace=" + ns + "&volumeSnapshot=" + volume_snapshot);
  for (const auto& v : doc.at("snapshots").as_array()) {
    if (kube::str_at(v, {"namespace"}) == ns && kube::str_at(v, {"volumeSnapshot"}) == volume_snapshot) {
      return std::string(kube::str_at(v, {"sha256"}));
    }
  }
  return {};
}

std::string ClaimExport::url(const std::string& format, const std::string& link) const {
  const auto* volumes = kube::array_at(vme, {"status", "links", link, "volumes"});
  if (!volumes || volumes->empty()) return {};
  if (const auto* formats = kube::array_at(volumes->at(0), {"formats"})) {
    for (const auto& f : *formats) {
      if (kube::str_at(f, {"format"}) == format) return std::string(kube::str_at(f, {"url"}));
    }
  }
  return {};
}

std::string ClaimExport::ca_pem(const std::string& link) const { return std::string(kube::str_at(vme, {"status", "links", link, "cert"})); }

Result<ClaimExport> export_claim(TestCluster& tc, const std::string& ns, const std::string& claim, const std::string& name) {
  const kube::ResourceRef exports{"export.kubevirt.io", "v1beta1", "virtualmachineexports", "VirtualMachineExport", true};
  json::object vme{{"apiVersion", "export.kubevirt.io/v1beta1"},
                   {"kind", "VirtualMachineExport"},
                   {"metadata", json::object{{"name", name}}},
                   {"spec", json::object{{"source", json::object{{"apiGroup", ""}, {"kind", "PersistentVolumeClaim"}, {"name", claim}}}}}};
  KVB_CHECK(tc.client()->create(exports, ns, vme));
  ClaimExport out;
  KVB_TRY(out.vme, kube::wait_for_object(
                       tc.client(), exports, ns, name,
                       [](const json::object* o) { return o && kube::str_at(*o, {"status", "phase"}) == "Ready"; },
                       std::chrono::seconds(60)));
  KVB_TRY(auto secret, tc.client()->get(kube::resources::kSecrets, ns, "export-token-" + name));
  auto token = base64_decode(kube::str_at(secret, {"data", "token"}));
  if (!token) return Error(Errc::kParse, "export " + ns + "/" + name + ": the token Secret holds no base64 token");
  out.token = std::move(*token);
  return out;
}

json::object TestCluster::exports() { return inspect("GET", "/testcluster/v1/exports"); }
void TestCluster::clear_exports() { (void)inspect("DELETE", "/testcluster/v1/exports"); }
json::object TestCluster::stats() { return inspect("GET", "/testcluster/v1/stats"); }
void TestCluster::clear_faults() { (void)inspect("DELETE", "/testcluster/v1/faults"); }

json::object TestCluster::add_fault(const std::string& fault_json) {
  return inspect("POST", "/testcluster/v1/faults", fault_json);
}

json::object TestCluster::vm_state(const std::string& ns, const std::string& name) {
  json::object all = vms();
  for (const auto& v : all.at("vms").as_array()) {
    if (kube::str_at(v, {"namespace"}) == ns && kube::str_at(v, {"name"}) == name) return v.as_object();
  }
  return {};
}

std::vector<json::object> TestCluster::events(const std::string& type, const std::string& vm) {
  std::vector<json::object> out;
  json::object t = timeline();
  for (const auto& e : t.at("events").as_array()) {
    if (kube::str_at(e, {"type"}) == type && (vm.empty() || kube::str_at(e, {"vm"}) == vm)) out.push_back(e.as_object());
  }
  return out;
}

std::string TestCluster::launcher_pod(const std::string& ns, const std::string& vm) {
  kube::ResourceRef vmi_ref{"kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance", true};
  auto vmi = client_->get(vmi_ref, ns, vm);
  if (!vmi) return {};
  kube::ListOptions lo;
  lo.label_selector = "kubevirt.io/created-by=" + std::string(kube::uid_of(*vmi));
  auto pods = client_->list(kube::resources::kPods, ns, lo);
  if (!pods || pods->items.empty()) return {};
  return std::string(kube::name_of(pods->items[0]));
}

kube::ExecResult TestCluster::exec(const std::string& ns, const std::string& pod, const std::string& container,
                                   std::vector<std::string> command) {
  kube::ExecRequest r;
  r.ns = ns;
  r.pod = pod;
  r.container = container;
  r.command = std::move(command);
  r.timeout = std::chrono::seconds(120);
  return kube::exec(client_, r);
}

bool kubectl_available() {
  ProcessSpec spec;
  spec.argv = {"kubectl", "version", "--client"};
  auto r = run_process(spec);
  return r && r->exit_code == 0;
}

std::optional<ProcessResult> run_kubectl(const std::filesystem::path& kubeconfig, const std::vector<std::string>& args,
                                         const std::string& stdin_data) {
  if (!kubectl_available()) return std::nullopt;
  ProcessSpec spec;
  spec.argv = {"kubectl", "--kubeconfig", kubeconfig.string()};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.stdin_data = stdin_data;
  spec.timeout = std::chrono::seconds(60);
  auto r = run_process(spec);
  if (!r) return std::nullopt;
  return *r;
}

std::string kvbackup_binary() {
  const char* build = std::getenv("KVB_BUILD_DIR");
  return (std::filesystem::path(build ? build : KVB_DEFAULT_BUILD_DIR) / "kvbackup").string();
}

ProcessResult run_kvbackup(const TestCluster& tc, const std::vector<std::string>& args) {
  ProcessSpec spec;
  spec.argv = {kvbackup_binary(), "--kubeconfig", tc.kubeconfig().string()};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.timeout = std::chrono::seconds(120);
  auto r = run_process(spec);
  if (!r) throw std::runtime_error(r.error().message);
  return *r;
}

}  // namespace kvb::testing
