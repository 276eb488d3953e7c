// KubeVirt's lifecycle subresources as virt-api serves them
// (kubevirt/kubevirt pkg/virt-api/rest/lifecycle.go): PUT
// virtualmachines/{name}/start, /stop, /restart patch the VM's
// spec.runStrategy (or the legacy spec.running) or append to its
// status.stateChangeRequests, with upstream's 404/409/400/500 answers; the VM
// controller (vm_lifecycle.cpp reconcile_vm) carries the requests out.
// virtualmachineinstances/{name}/pause and /unpause suspend and resume the
// domain (virt-handler -> virt-launcher): the VMI gets the Paused condition
// (reason PausedByUser, Ready False) and the VM printableStatus Paused.
// A body's dryRun ["All"] validates without writing.
#include "kube/object.h"
#include "testcluster/kubevirt.h"

#include <boost/json.hpp>

namespace kvb::testcluster {
namespace json = boost::json;
using kube::resources::kPods;

namespace {

LifecycleAnswer accepted() { return LifecycleAnswer{202, {}}; }
LifecycleAnswer conflict(const std::string& kind, const std::string& name, const std::string& why) {
  return LifecycleAnswer{409, "Operation cannot be fulfilled on " + kind + ".kubevirt.io \"" + name + "\": " + why};
}
LifecycleAnswer internal(const std::string& why) { return LifecycleAnswer{500, "Internal error occurred: " + why}; }
LifecycleAnswer not_found(const std::string& kind, const std::string& name) {
  return LifecycleAnswer{404, kind + ".kubevirt.io \"" + name + "\" not found"};
}
LifecycleAnswer bad_request(const std::string& why) { return LifecycleAnswer{400, why}; }

bool dry_run(const json::object* body) {
  if (!body) return false;
  const auto* d = body->if_contains("dryRun");
  if (!d || !d->is_array()) return false;
  for (const auto& v : d->as_array()) {
    if (v.is_string() && v.as_string() == "All") return true;
  }
  return false;
}

std::optional<int64_t> int_field(const json::object* body, const char* name) {
  if (!body) return std::nullopt;
  const auto* v = body->if_contains(name);
  if (!v || !v->is_number()) return std::nullopt;
  return v->to_number<int64_t>();
}

bool final_phase(const Object* vmi) {
  if (!vmi) return false;
  auto p = kube::str_at(*vmi, {"status", "phase"});
  return p == "Failed" || p == "Succeeded";
}

}  // namespace

std::string run_strategy(const Object& vm) {
  std::string s(kube::str_at(vm, {"spec", "runStrategy"}));
  if (!s.empty()) return s;
  return kube::bool_at(vm, {"spec", "running"}).value_or(false) ? "Always" : "Halted";
}

std::vector<StateChange> state_changes(const Object& vm) {
  std::vector<StateChange> out;
  if (const auto* a = kube::array_at(vm, {"status", "stateChangeRequests"})) {
    for (const auto& r : *a) {
      StateChange c;
      c.action = std::string(kube::str_at(r, {"action"}));
      c.uid = std::string(kube::str_at(r, {"uid"}));
      c.start_paused = kube::str_at(r, {"data", "paused"}) == "true";
      out.push_back(std::move(c));
    }
  }
  return out;
}

void set_state_changes(Object& vm, const std::vector<StateChange>& changes) {
  if (!vm.contains("status") || !vm["status"].is_object()) vm["status"] = json::object();
  json::array out;
  for (const auto& c : changes) {
    json::object o{{"action", c.action}};
    if (!c.uid.empty()) o["uid"] = c.uid;
    if (c.start_paused) o["data"] = json::object{{"paused", "true"}};
    out.push_back(std::move(o));
  }
  vm["status"].as_object()["stateChangeRequests"] = std::move(out);
}

LifecycleAnswer KubeVirt::lifecycle(const std::string& ns, const std::string& name, const std::string& sub,
                                    const json::object* body) {
  if (sub == "start") return start_vm(ns, name, body);
  if (sub == "stop") return stop_vm(ns, name, body);
  if (sub == "restart") return restart_vm(ns, name, body);
  return pause_vmi(ns, name, sub == "pause", dry_run(body));
}

namespace {

// lifecycle.go getChangeRequestJson: requests are appended only when there are
// none; a lone stop replaces what is there; anything else is refused.
std::optional<std::string> add_changes(std::vector<StateChange>& have, const std::vector<StateChange>& add) {
  if (have.empty()) {
    have = add;
    return std::nullopt;
  }
  if (add.size() == 1 && add[0].action == "Stop") {
    have = add;
    return std::nullopt;
  }
  return std::string("unable to complete request: stop/start already underway");
}

}  // namespace

LifecycleAnswer KubeVirt::start_vm(const std::string& ns, const std::string& name, const json::object* body) {
  const Object* vm = c_.store().find(c_.resource(res::kVirtualMachines), ns, name);
  if (!vm) return not_found("virtualmachine", name);
  const Object* vmi = c_.store().find(c_.resource(res::kVirtualMachineInstances), ns, name);
  std::string phase = vmi ? std::string(kube::str_at(*vmi, {"status", "phase"})) : std::string();
  if (vmi && !final_phase(vmi) && !phase.empty() && phase != "Unknown") {
    return conflict("virtualmachine", name, "VM is already running");
  }
  bool paused = body && kube::bool_at(*body, {"paused"}).value_or(false);
  bool dry = dry_run(body);
  std::string strategy = run_strategy(*vm);
  std::string vm_uid(kube::uid_of(*vm));
  if (strategy == "Halted") {
    if (dry) return accepted();
    if (paused) {
      // A start request with data paused: the controller sets runStrategy Always and starts it paused.
      auto changes = state_changes(*vm);
      if (auto err = add_changes(changes, {StateChange{"Start", "", true}})) return internal(*err);
      (void)c_.store().mutate(c_.resource(res::kVirtualMachines), ns, name, [&](Object& o) {
        set_state_changes(o, changes);
      });
      return accepted();
    }
    bool legacy = !kube::value_at(*vm, {"spec", "runStrategy"});
    (void)c_.store().mutate(c_.resource(res::kVirtualMachines), ns, name, [&](Object& o) {
      auto& spec = o["spec"].as_object();
      if (legacy) spec["running"] = true;
      else spec["runStrategy"] = "Always";
    });
    return accepted();
  }
  if (strategy == "RerunOnFailure" || strategy == "Manual") {
    bool restart = (strategy == "RerunOnFailure" && phase == "Succeeded") || (strategy == "Manual" && final_phase(vmi));
    if (strategy == "RerunOnFailure" && phase == "Failed") {
      return conflict("virtualmachine", name, "RerunOnFailure does not support starting VM from failed state");
    }
    std::vector<StateChange> add;
    if (restart) add.push_back(StateChange{"Stop", std::string(kube::uid_of(*vmi)), false});
    add.push_back(StateChange{"Start", "", paused});
    auto changes = state_changes(*vm);
    if (auto err = add_changes(changes, add)) return internal(*err);
    if (dry) return accepted();
    (void)c_.store().mutate(c_.resource(res::kVirtualMachines), ns, name, [&](Object& o) {
      set_state_changes(o, changes);
    });
    return accepted();
  }
  return conflict("virtualmachine", name, strategy + " does not support manual start requests");  // Always, Once
}

LifecycleAnswer KubeVirt::stop_vm(const std::string& ns, const std::string& name, const json::object* body) {
  const Object* vm = c_.store().find(c_.resource(res::kVirtualMachines), ns, name);
  if (!vm) return not_found("virtualmachine", name);
  std::string strategy = run_strategy(*vm);
  const Object* vmi = c_.store().find(c_.resource(res::kVirtualMachineInstances), ns, name);
  bool dry = dry_run(body);
  auto grace = int_field(body, "gracePeriod");
  std::optional<int64_t> old_grace;
  if (vmi) old_grace = kube::int_at(*vmi, {"spec", "terminationGracePeriodSeconds"});
  if (vmi && !final_phase(vmi) && grace && !dry) {
    (void)c_.store().mutate(c_.resource(res::kVirtualMachineInstances), ns, name, [&](Object& o) {
      o["spec"].as_object()["terminationGracePeriodSeconds"] = *grace;
    });
  }
  auto stop_request = [&]() {
    auto changes = state_changes(*vm);
    (void)add_changes(changes, {StateChange{"Stop", std::string(kube::uid_of(*vmi)), false}});  // a lone stop always goes in
    if (dry) return accepted();
    (void)c_.store().mutate(c_.resource(res::kVirtualMachines), ns, name, [&](Object& o) {
      set_state_changes(o, changes);
    });
    return accepted();
  };
  if (strategy == "Halted") {
    if (!vmi || final_phase(vmi)) return conflict("virtualmachine", name, "VM is not running");
    if (!grace || (old_grace && *grace >= *old_grace)) {
      return conflict("virtualmachine", name, "Halted only supports manual stop requests with a shorter graceperiod");
    }
    return stop_request();
  }
  if (strategy == "RerunOnFailure" || strategy == "Manual") {
    if (!vmi || final_phase(vmi)) return conflict("virtualmachine", name, "VM is not running");
    return stop_request();
  }
  // Always, Once: spec.runStrategy Halted (or spec.running false).
  if (dry) return accepted();
  bool legacy = !kube::value_at(*vm, {"spec", "runStrategy"});
  (void)c_.store().mutate(c_.resource(res::kVirtualMachines), ns, name, [&](Object& o) {
    auto& spec = o["spec"].as_object();
    if (legacy) spec["running"] = false;
    else spec["runStrategy"] = "Halted";
  });
  return accepted();
}

LifecycleAnswer KubeVirt::restart_vm(const std::string& ns, const std::string& name, const json::object* body) {
  auto grace = int_field(body, "gracePeriodSeconds");
  if (grace && *grace > 0) return bad_request("For force restart, only gracePeriod=0 is supported for now");
  if (grace && *grace < 0) return bad_request("gracePeriod has to be greater or equal to 0");
  const Object* vm = c_.store().find(c_.resource(res::kVirtualMachines), ns, name);
  if (!vm) return not_found("virtualmachine", name);
  std::string strategy = run_strategy(*vm);
  if (strategy == "Halted" || strategy == "Once") {
    return conflict("virtualmachine", name, "RunStategy " + strategy + " does not support manual restart requests");
  }
  const Object* vmi = c_.store().find(c_.resource(res::kVirtualMachineInstances), ns, name);
  if (!vmi) return conflict("virtualmachine", name, "VM is not running: Halted");
  std::string vmi_uid(kube::uid_of(*vmi));
  auto changes = state_changes(*vm);
  if (auto err = add_changes(changes, {StateChange{"Stop", vmi_uid, false}, StateChange{"Start", "", false}})) {
    return internal(*err);
  }
  if (dry_run(body)) return accepted();
  (void)c_.store().mutate(c_.resource(res::kVirtualMachines), ns, name, [&](Object& o) {
    set_state_changes(o, changes);
  });
  if (grace && *grace == 0) {
    // A forced restart deletes the running launcher pod (findPod: kubevirt.io=virt-launcher, created-by the VMI).
    if (Guest* g = guest(ns, name); g && g->vmi_uid == vmi_uid) {
      std::string pod = g->pod;
      (void)c_.store().remove(c_.resource(kPods), ns, pod);
    }
  }
  return accepted();
}

LifecycleAnswer KubeVirt::pause_vmi(const std::string& ns, const std::string& name, bool pause, bool dry) {
  const Object* vmi = c_.store().find(c_.resource(res::kVirtualMachineInstances), ns, name);
  if (!vmi) return not_found("virtualmachineinstance", name);
  Guest* g = guest(ns, name);
  bool running = g && kube::str_at(*vmi, {"status", "phase"}) == "Running";
  if (pause) {
    if (!running) return conflict("virtualmachineinstance", name, "VM is not running");
    if (kube::value_at(*vmi, {"spec", "livenessProbe"})) {
      return LifecycleAnswer{403, "virtualmachineinstance.kubevirt.io \"" + name +
                                      "\" is forbidden: Pausing VMIs with LivenessProbe is currently not supported"};
    }
    if (g->paused) return conflict("virtualmachineinstance", name, "VMI is already paused");
  } else {
    if (!running) return conflict("virtualmachineinstance", name, "VMI is not running");
    if (!g->paused) return conflict("virtualmachineinstance", name, "VMI is not paused");
  }
  if (dry) return LifecycleAnswer{200, {}};
  g->paused = pause;
  // The guest's clock stops while paused; it runs again when unpaused (and not frozen).
  set_active(*g, !pause && !g->frozen);
  if (!pause) {
    // A scenario's `paused: true` is how the VM was found, not how it restarts.
    if (auto it = specs_.find(ns + "/" + name); it != specs_.end()) it->second.paused = false;
  }
  c_.timeline().record(TimelineEvent{WallClock::now(), pause ? "Paused" : "Unpaused", ns, name, "", "", g->frozen,
                                     pause ? "pause subresource" : "unpause subresource"});
  update_vmi_conditions(*g);
  std::string owner;
  if (const auto* refs = kube::array_at(*vmi, {"metadata", "ownerReferences"})) {
    for (const auto& r : *refs) {
      if (kube::str_at(r, {"kind"}) == "VirtualMachine") owner = std::string(kube::str_at(r, {"name"}));
    }
  }
  if (!owner.empty()) update_vm_status(ns, owner);
  return LifecycleAnswer{200, {}};
}

}  // namespace kvb::testcluster
