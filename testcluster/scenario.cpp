#include "testcluster/scenario.h"

#include "common/atomic_file.h"
#include "common/bounded_read.h"
#include "common/doc_reader.h"
#include "common/yaml_json.h"
#include "kube/selector.h"

#include <boost/json.hpp>

#include <regex>

namespace kvb::testcluster {
namespace json = boost::json;

std::string_view agent_mode_name(AgentMode m) {
  switch (m) {
    case AgentMode::kConnected: return "connected";
    case AgentMode::kNone: return "none";
    case AgentMode::kUnresponsive: return "unresponsive";
    case AgentMode::kVss10s: return "vss10s";
  }
  return "?";
}

std::pair<int, int> parse_version(std::string_view v) {
  if (!v.empty() && v[0] == 'v') v.remove_prefix(1);
  int major = 0, minor = 0;
  size_t i = 0;
  while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]))) major = major * 10 + (v[i++] - '0');
  if (i < v.size() && v[i] == '.') {
    ++i;
    while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]))) minor = minor * 10 + (v[i++] - '0');
  }
  return {major, minor};
}

namespace {

// DNS-1123 label: what Kubernetes requires of namespace names and most object names.
bool valid_dns_label(const std::string& s) {
  static const std::regex re("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
  return s.size() <= 63 && std::regex_match(s, re);
}
bool valid_dns_subdomain(const std::string& s) {
  static const std::regex re("[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*");
  return s.size() <= 253 && std::regex_match(s, re);
}

Status check_labels(DocReader& r, std::string_view key, const std::map<std::string, std::string>& labels) {
  for (const auto& [k, v] : labels) {
    if (auto st = kube::validate_label_key(k); !st) return r.error(key, st.error().message);
    if (auto st = kube::validate_label_value(v); !st) return r.error(key, st.error().message);
  }
  return ok();
}

Result<std::vector<ExecScript>> read_scripts(DocReader& r) {
  std::vector<ExecScript> out;
  KVB_TRY(auto items, r.list("exec"));
  for (auto& it : items) {
    ExecScript s;
    KVB_TRY(s.pattern, it.required_str("pattern"));
    try {
      std::regex test(s.pattern);
    } catch (const std::regex_error& e) {
      return it.error("pattern", std::string("is not a valid regular expression: ") + e.what());
    }
    KVB_TRY(s.container, it.str("container"));
    KVB_TRY(s.stdout_text, it.str("stdout"));
    KVB_TRY(s.stderr_text, it.str("stderr"));
    KVB_TRY(auto code, it.integer("exitCode", 0));
    KVB_TRY(s.delay, it.duration("delay", Duration{0}));
    KVB_TRY(s.hang, it.boolean("hang", false));
    KVB_CHECK(it.finish());
    s.exit_code = static_cast<int>(code);
    out.push_back(std::move(s));
  }
  return out;
}

Result<VmSpec> read_vm(DocReader& r) {
  VmSpec vm;
  KVB_TRY(auto name, r.required_str("name"));
  KVB_TRY(auto count, r.integer("count", 1));
  KVB_TRY(auto running, r.boolean("running", true));
  KVB_TRY(auto paused, r.boolean("paused", false));
  KVB_TRY(auto migrating, r.boolean("migrating", false));
  KVB_TRY(auto hostname, r.str("hostname"));
  KVB_TRY(auto agent, r.str("agent", "connected"));
  KVB_TRY(auto guest, r.str("guest", "simulated"));
  KVB_TRY(auto freeze_latency, r.duration("freezeLatency", vm.freeze_latency));
  KVB_TRY(auto thaw_latency, r.duration("thawLatency", vm.thaw_latency));
  KVB_TRY(auto labels, r.string_map("labels"));
  KVB_TRY(auto annotations, r.string_map("annotations"));
  KVB_TRY(auto volumes, r.list("volumes"));
  KVB_TRY(auto scripts, read_scripts(r));
  if (!valid_dns_subdomain(name)) return r.error("name", "\"" + name + "\" is not a valid VM name (DNS subdomain)");
  if (count < 1 || count > 100000) return r.error("count", "must be between 1 and 100000");
  if (agent == "connected") vm.agent = AgentMode::kConnected;
  else if (agent == "none") vm.agent = AgentMode::kNone;
  else if (agent == "unresponsive") vm.agent = AgentMode::kUnresponsive;
  else if (agent == "vss10s") vm.agent = AgentMode::kVss10s;
  else return r.error("agent", "\"" + agent + "\" is not one of connected, none, unresponsive, vss10s");
  if (guest != "simulated" && guest != "qemu") return r.error("guest", "\"" + guest + "\" is not one of simulated, qemu");
  vm.qemu_guest = guest == "qemu";
  if (vm.qemu_guest && count != 1) return r.error("guest", "a qemu guest is one real VM: count must be 1");
  if (vm.qemu_guest && agent != "connected") {
    return r.error("guest", "a qemu guest runs the real agent: agent must be connected (the default)");
  }
  if (auto st = check_labels(r, "labels", labels); !st) return st.error();
  vm.name = name;
  vm.count = static_cast<int>(count);
  vm.running = running;
  vm.paused = paused;
  vm.migrating = migrating;
  vm.hostname = hostname;
  vm.freeze_latency = freeze_latency;
  vm.thaw_latency = thaw_latency;
  vm.labels = labels;
  vm.annotations = annotations;
  vm.exec = scripts;
  for (auto& v : volumes) {
    VolumeSpec vs;
    KVB_TRY(auto vname, v.required_str("name"));
    KVB_TRY(auto type, v.required_str("type"));
    KVB_TRY(auto size, v.str("size", "10Gi"));
    KVB_TRY(auto sc, v.str("storageClass"));
    KVB_TRY(auto hotplug, v.boolean("hotplug", false));
    if (type != "dataVolume" && type != "persistentVolumeClaim" && type != "cloudInitNoCloud" && type != "containerDisk") {
      return v.error("type", "\"" + type + "\" is not one of dataVolume, persistentVolumeClaim, cloudInitNoCloud, containerDisk");
    }
    if (auto st = v.finish(); !st) return st.error();
    vs.name = vname;
    vs.type = type;
    vs.size = size;
    vs.storage_class = sc;
    vs.hotplug = hotplug;
    vm.volumes.push_back(std::move(vs));
  }
  if (vm.qemu_guest) {
    bool has_disk = false;
    for (const auto& v : vm.volumes) has_disk |= v.type == "dataVolume" || v.type == "persistentVolumeClaim";
    if (!has_disk) return r.error("guest", "a qemu guest needs a dataVolume or persistentVolumeClaim volume for its disk");
  }
  if (auto st = r.finish(); !st) return st.error();
  return vm;
}

Result<PodSpec> read_pod(DocReader& r) {
  PodSpec p;
  KVB_TRY(auto name, r.required_str("name"));
  KVB_TRY(auto labels, r.string_map("labels"));
  KVB_TRY(auto phase, r.str("phase", "Running"));
  KVB_TRY(auto containers, r.list("containers"));
  KVB_TRY(auto scripts, read_scripts(r));
  if (!valid_dns_subdomain(name)) return r.error("name", "\"" + name + "\" is not a valid pod name");
  if (auto st = check_labels(r, "labels", labels); !st) return st.error();
  p.name = name;
  p.labels = labels;
  p.phase = phase;
  p.exec = scripts;
  for (auto& c : containers) {
    ContainerSpec cs;
    KVB_TRY(auto cname, c.required_str("name"));
    KVB_TRY(auto image, c.str("image", cs.image));
    KVB_TRY(auto log, c.str("log", ""));
    if (auto st = c.finish(); !st) return st.error();
    cs.name = cname;
    cs.image = image;
    cs.log = log;
    p.containers.push_back(cs);
  }
  if (p.containers.empty()) p.containers.push_back(ContainerSpec{"app", "registry.example/app:latest", ""});
  if (auto st = r.finish(); !st) return st.error();
  return p;
}

}  // namespace

Result<Scenario> parse_scenario(const std::string& text, const std::string& origin) {
  auto doc = parse_yaml(text, origin);
  if (!doc) return doc.error();
  DocReader r(*doc, origin, "");
  Scenario s;
  KVB_TRY(auto kv, r.str("kubevirtVersion", s.kubevirt_version));
  KVB_TRY(auto k8s, r.str("kubernetesVersion", s.kubernetes_version));
  KVB_TRY(auto poll, r.duration("fsFreezePollInterval", s.fs_freeze_poll_interval));
  const json::value* deadline = r.raw("launcherFreezeDeadline");
  KVB_TRY(auto classes, r.list("snapshotClasses"));
  KVB_TRY(auto scs, r.list("storageClasses"));
  KVB_TRY(auto namespaces, r.list("namespaces"));
  KVB_TRY(auto tokens, r.list("tokens"));
  const json::value* faults = r.raw("faults");
  if (auto st = r.finish(); !st) return st.error();
  if (parse_version(kv).first == 0) return r.error("kubevirtVersion", "\"" + kv + "\" is not a version like 1.8");
  s.kubevirt_version = kv;
  s.kubernetes_version = k8s;
  s.fs_freeze_poll_interval = poll;
  if (deadline) {
    KVB_TRY(auto d, r.duration("launcherFreezeDeadline", Duration{0}));
    s.launcher_freeze_deadline = d;
  }
  for (auto& c : classes) {
    SnapshotClassSpec sc;
    KVB_TRY(auto name, c.required_str("name"));
    KVB_TRY(auto driver, c.required_str("driver"));
    KVB_TRY(auto policy, c.str("deletionPolicy", "Delete"));
    KVB_TRY(auto cut, c.duration("cutLatency", sc.cut_latency));
    KVB_TRY(auto ready, c.duration("readyLatency", sc.ready_latency));
    KVB_TRY(auto def, c.boolean("default", true));
    KVB_TRY(auto cbt, c.boolean("snapshotMetadata", false));
    if (policy != "Delete" && policy != "Retain") return c.error("deletionPolicy", "must be Delete or Retain");
    if (auto st = c.finish(); !st) return st.error();
    sc.name = name;
    sc.driver = driver;
    if (cbt) sc.snapshot_metadata_audience = "snapshot-metadata." + driver;
    sc.deletion_policy = policy;
    sc.cut_latency = cut;
    sc.ready_latency = ready;
    sc.is_default = def;
    s.snapshot_classes.push_back(sc);
  }
  for (auto& c : scs) {
    KVB_TRY(auto name, c.required_str("name"));
    KVB_TRY(auto prov, c.required_str("provisioner"));
    if (auto st = c.finish(); !st) return st.error();
    s.storage_classes.push_back({name, prov});
  }
  for (auto& n : namespaces) {
    NamespaceSpec ns;
    KVB_TRY(auto name, n.required_str("name"));
    KVB_TRY(auto labels, n.string_map("labels"));
    KVB_TRY(auto vms, n.list("vms"));
    KVB_TRY(auto pods, n.list("pods"));
    if (auto st = n.finish(); !st) return st.error();
    if (!valid_dns_label(name)) return n.error("name", "\"" + name + "\" is not a valid namespace name (DNS label)");
    ns.name = name;
    ns.labels = labels;
    for (auto& v : vms) {
      auto vm = read_vm(v);
      if (!vm) return vm.error();
      ns.vms.push_back(std::move(*vm));
    }
    for (auto& p : pods) {
      auto pod = read_pod(p);
      if (!pod) return pod.error();
      ns.pods.push_back(std::move(*pod));
    }
    s.namespaces.push_back(std::move(ns));
  }
  for (auto& t : tokens) {
    TokenSpec ts;
    KVB_TRY(auto user, t.required_str("user"));
    KVB_TRY(auto token, t.required_str("token"));
    KVB_TRY(auto admin, t.boolean("admin", false));
    KVB_TRY(auto rules, t.list("rules"));
    if (auto st = t.finish(); !st) return st.error();
    ts.user = user;
    ts.token = token;
    ts.admin = admin;
    for (auto& rr : rules) {
      RbacRule rule;
      KVB_TRY(auto verbs, rr.string_list("verbs"));
      KVB_TRY(auto resources, rr.string_list("resources"));
      KVB_TRY(auto nss, rr.string_list("namespaces"));
      if (auto st = rr.finish(); !st) return st.error();
      if (verbs.empty()) return rr.error("verbs", "is required");
      if (resources.empty()) return rr.error("resources", "is required");
      rule.verbs = verbs;
      rule.resources = resources;
      rule.namespaces = nss;
      ts.rules.push_back(rule);
    }
    s.tokens.push_back(std::move(ts));
  }
  if (faults) {
    if (!faults->is_array()) return r.error("faults", "must be a list");
    for (const auto& f : faults->get_array()) s.faults.push_back(f);
  }
  return s;
}

Result<Scenario> load_scenario(const std::filesystem::path& file) {
  auto text = read_file_bounded(file, "scenario");
  if (!text) return Error(Errc::kInvalidArgument, text.error().message);
  return parse_scenario(*text, file.string());
}

}  // namespace kvb::testcluster
