// KubeVirt, as the test cluster simulates it: the VM and VMI controllers (VM
// -> DataVolumes -> VMI -> virt-launcher pod with the real names, labels, owner
// references and Velero hook annotations, scheduled once its claims are bound;
// restarts and printableStatus as upstream, see vm_lifecycle.cpp), the guest (agent modes, freeze/thaw with latencies, the
// auto-thaw timer, the Windows 10-second VSS limit, pause and migration), the
// fsFreezeStatus poll, the freeze/unfreeze/guestosinfo subresources, the VM
// start/stop/restart and VMI pause/unpause subresources (vm_subresources.cpp:
// runStrategy patches and status.stateChangeRequests as virt-api writes them,
// carried out by the VM controller in vm_lifecycle.cpp) and
// /usr/bin/virt-freezer in the compute container, following
// kvbackup's reference notes on KubeVirt (virt-freezer, launcher pods, the
// freeze API; see docs/testcluster.md for the upstream sources).
#pragma once

#include "testcluster/cluster.h"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace kvb::testcluster {

// The guest travels with its VM (as a real guest's agent travels in its disk
// image): a scenario VM with `guest: qemu` or an agent other than `connected`
// carries these annotations in spec.template.metadata, so a copy of it made
// through the API (a restore, another cluster) boots the same kind of guest.
// A VM the scenario did not declare takes its guest from its VMI's annotations
// (default: simulated, agent connected).
inline constexpr const char* kGuestAnnotation = "testcluster.kvbackup.io/guest";  // simulated | qemu
inline constexpr const char* kAgentAnnotation = "testcluster.kvbackup.io/agent";  // connected | none | unresponsive | vss10s

// A running VMI (phase Running, launcher pod scheduled and running).
struct Guest {
  std::string ns;
  std::string vm;      // the VM (and VMI) name
  std::string vmi_uid;
  std::string pod;     // launcher pod name
  AgentMode agent = AgentMode::kConnected;
  bool agent_connected = true;  // AgentConnected condition present
  bool qemu = false;            // a real guest (QemuVms): freeze/thaw/status go to its agent
  int boot_waits = 0;           // real guest: 100 ms waits for its disk's claim to be bound
  bool paused = false;
  bool migrating = false;
  Duration freeze_latency{0};
  Duration thaw_latency{0};
  std::vector<ExecScript> scripts;

  bool frozen = false;
  bool vss_expired = false;  // Windows thawed itself after 10 s; the next unfreeze fails
  std::shared_ptr<Timer> auto_thaw;
  std::shared_ptr<Timer> vss_timer;
  std::vector<std::string> pvcs;

  // Activity clock for the guest data model: runs while running, unpaused, unfrozen.
  int64_t active_ns = 0;
  bool active = false;
  std::chrono::steady_clock::time_point active_since{};
  int64_t active_ms() const;
};

// What a freeze or thaw did, in virt-freezer's terms.
struct FreezeOutcome {
  int exit_code = 0;
  std::vector<std::string> log;  // virt-freezer log messages, in order
  bool froze = false;            // the guest is frozen because of this call
  int http_status = 200;         // for the subresource API
  std::string http_message;
};

// The answer of a lifecycle subresource (virt-api lifecycle.go): 202 for
// start/stop/restart, 200 for pause/unpause, else an error status and message.
struct LifecycleAnswer {
  int status = 200;
  std::string message;
};

// One entry of a VM's status.stateChangeRequests.
struct StateChange {
  std::string action;  // Start | Stop
  std::string uid;     // Stop: the VMI it is for
  bool start_paused = false;  // Start: data {"paused": "true"}
};

class KubeVirt {
 public:
  explicit KubeVirt(Cluster& c);
  ~KubeVirt();

  void on_change(const StoreEvent& e);
  Status create_vm(const std::string& ns, const VmSpec& spec, const std::string& name);

  Guest* guest(const std::string& ns, const std::string& vm);
  Guest* guest_for_pod(const std::string& ns, const std::string& pod);

  // virt-freezer in a launcher pod's compute container.
  void virt_freezer(Guest* local, const std::vector<std::string>& args,
                    std::function<void(std::string out, std::string err, int exit)> done);
  // subresources.kubevirt.io: PUT freeze/unfreeze, GET guestosinfo.
  void freeze_subresource(const std::string& ns, const std::string& vmi, Duration unfreeze_timeout,
                          std::function<void(FreezeOutcome)> done);
  void unfreeze_subresource(const std::string& ns, const std::string& vmi, std::function<void(FreezeOutcome)> done);
  Result<boost::json::object> guest_os_info(const std::string& ns, const std::string& vmi);
  // subresources.kubevirt.io: PUT virtualmachines/{start,stop,restart} and
  // virtualmachineinstances/{pause,unpause}; body: the options object or null.
  LifecycleAnswer lifecycle(const std::string& ns, const std::string& name, const std::string& sub,
                            const boost::json::object* body);

  std::pair<int, int> version() const { return version_; }

 private:
  // vm_lifecycle.cpp
  void reconcile_vm(const std::string& ns, const std::string& name);
  bool ensure_datavolumes(const Object& vm);
  void sync_vmi(const std::string& ns, const std::string& name);
  void sync_vmi_volumes(const std::string& ns, const std::string& name);
  void launch(const std::string& ns, const std::string& name, const std::string& pod, const std::vector<std::string>& claims);
  void launcher_pod_gone(const std::string& ns, const std::string& pod, const std::string& vmi, const std::string& vmi_uid);
  void volumes_changed(const std::string& ns);
  void teardown(const std::string& ns, const std::string& name, const std::string& why);
  void stop_vmi(const std::string& ns, const std::string& name, const std::string& why);
  void update_vm_status(const std::string& ns, const std::string& name);
  std::string printable_status(const Object& vm, const Object* vmi) const;
  // vm_subresources.cpp
  LifecycleAnswer start_vm(const std::string& ns, const std::string& name, const boost::json::object* body);
  LifecycleAnswer stop_vm(const std::string& ns, const std::string& name, const boost::json::object* body);
  LifecycleAnswer restart_vm(const std::string& ns, const std::string& name, const boost::json::object* body);
  LifecycleAnswer pause_vmi(const std::string& ns, const std::string& name, bool pause, bool dry_run);
  // kubevirt.cpp
  Object make_vmi(const Object& vm, const std::string& name);
  Object make_pod(const Object& vmi, const Guest& g, const std::string& hostname);
  void set_active(Guest& g, bool active);
  void poll_fs_freeze();
  void freeze(Guest& g, int64_t unfreeze_timeout_s, std::function<void(FreezeOutcome)> done);
  void thaw(Guest& g, std::string why, std::function<void(FreezeOutcome)> done);
  void set_frozen(Guest& g, bool frozen, const std::string& event_type, const std::string& detail);
  void disconnect_agent(Guest& g, Duration how_long);
  // The real-guest paths (guest_freeze.cpp): boot, freeze/thaw through the
  // agent, fsFreezeStatus from the agent.
  void boot_qemu(Guest& g);
  void freeze_qemu(Guest& g, int64_t unfreeze_timeout_s, std::function<void(FreezeOutcome)> done);
  void thaw_qemu(Guest& g, const std::string& event_type, const std::string& why, std::function<void(FreezeOutcome)> done);
  void poll_qemu(Guest& g);
  void stop_qemu(Guest& g);
  void update_vmi_conditions(Guest& g);
  Duration launcher_freeze_deadline() const;

  Cluster& c_;
  std::pair<int, int> version_;
  std::map<std::string, std::unique_ptr<Guest>> guests_;  // "ns/vm"
  // "ns/pod" -> the guest whose launcher pod it is, so that an exec finds its
  // guest without a scan of every guest; checked against the guest on use.
  std::map<std::string, Guest*> guest_by_pod_;
  std::map<std::string, VmSpec> specs_;                   // "ns/vm": scenario settings of each VM
  std::set<std::string> pending_vmis_;                    // "ns/vmi": not running yet (Pending, Scheduling)
  std::map<std::string, std::string> launcher_pods_;      // "ns/vmi" -> pod of a VMI not running yet
  std::set<std::string> waiting_vms_;                     // "ns/vm": waiting on DataVolumes for a VMI
  std::map<std::string, std::chrono::steady_clock::time_point> restart_at_;  // "ns/vm": failed VMI, restart not before
  std::set<std::string> start_paused_;                    // "ns/vm": the next VMI starts paused (start --paused)
  std::shared_ptr<Timer> poll_timer_;
};

std::vector<StateChange> state_changes(const Object& vm);
// Writes status.stateChangeRequests of a VM object.
void set_state_changes(Object& vm, const std::vector<StateChange>& changes);
// spec.runStrategy, or what the legacy spec.running stands for.
std::string run_strategy(const Object& vm);

std::string launcher_hostname(const std::string& vmi_name, const std::string& spec_hostname);
// An ownerReference to `owner` with controller and blockOwnerDeletion set.
boost::json::object controller_ref(const Object& owner);

}  // namespace kvb::testcluster
