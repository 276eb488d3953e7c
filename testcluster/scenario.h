// The scenario file: what the test cluster starts with (see docs/testcluster.md).
//
// A scenario lists storage and snapshot classes, namespaces with VMs and plain
// pods, optional RBAC-lite tokens and faults. Durations use Go syntax. Parsing
// is strict: unknown fields and bad values are errors naming the file and the
// path of the field ("namespaces[0].vms[2].agent").
#pragma once

#include "common/error.h"

#include <boost/json/value.hpp>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kvb::testcluster {

using Duration = std::chrono::nanoseconds;

struct SnapshotClassSpec {
  std::string name;
  std::string driver;
  std::string deletion_policy = "Delete";
  Duration cut_latency = std::chrono::milliseconds(200);
  Duration ready_latency = std::chrono::seconds(1);
  bool is_default = true;
  // The driver serves changed-block tracking (SnapshotMetadataService `<driver>`,
  // snapshot_metadata_server.h) for this audience; empty: it does not.
  std::string snapshot_metadata_audience;
};

struct StorageClassSpec {
  std::string name;
  std::string provisioner;
};

struct VolumeSpec {
  std::string name;
  std::string type;  // dataVolume | persistentVolumeClaim | cloudInitNoCloud | containerDisk
  std::string size = "10Gi";
  std::string storage_class;
  bool hotplug = false;
};

// A scripted answer to an exec whose command line matches `pattern` (ECMAScript regex).
struct ExecScript {
  std::string pattern;
  std::string container;  // empty: any
  std::string stdout_text;
  std::string stderr_text;
  int exit_code = 0;
  Duration delay{0};
  bool hang = false;
};

enum class AgentMode { kConnected, kNone, kUnresponsive, kVss10s };
std::string_view agent_mode_name(AgentMode m);

struct VmSpec {
  std::string name;
  int count = 1;
  bool running = true;
  bool paused = false;
  bool migrating = false;
  std::string hostname;
  AgentMode agent = AgentMode::kConnected;
  // guest: qemu — a real Linux guest under QEMU with the real agent; its first
  // dataVolume/persistentVolumeClaim volume is the guest's ext4 data disk.
  bool qemu_guest = false;
  Duration freeze_latency = std::chrono::milliseconds(20);
  Duration thaw_latency = std::chrono::milliseconds(10);
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::vector<VolumeSpec> volumes;
  std::vector<ExecScript> exec;
};

struct ContainerSpec {
  std::string name;
  std::string image = "registry.example/app:latest";
  std::string log;  // what GET pods/{name}/log returns for this container
};

struct PodSpec {
  std::string name;
  std::map<std::string, std::string> labels;
  std::vector<ContainerSpec> containers;
  std::string phase = "Running";
  std::vector<ExecScript> exec;
};

struct NamespaceSpec {
  std::string name;
  std::map<std::string, std::string> labels;
  std::vector<VmSpec> vms;
  std::vector<PodSpec> pods;
};

struct RbacRule {
  std::vector<std::string> verbs;       // get, list, watch, create, update, patch, delete, "*"
  std::vector<std::string> resources;   // "pods", "pods/exec", "virtualmachineinstances/freeze", "*"
  std::vector<std::string> namespaces;  // empty: all
};

struct TokenSpec {
  std::string user;
  std::string token;
  std::vector<RbacRule> rules;
  bool admin = false;
};

struct Scenario {
  std::string kubevirt_version = "1.8";
  std::string kubernetes_version = "1.31.0";
  Duration fs_freeze_poll_interval = std::chrono::seconds(5);
  std::optional<Duration> launcher_freeze_deadline;  // default: 60s from 1.8, else 20s
  std::vector<SnapshotClassSpec> snapshot_classes;
  std::vector<StorageClassSpec> storage_classes;
  std::vector<NamespaceSpec> namespaces;
  std::vector<TokenSpec> tokens;
  std::vector<boost::json::value> faults;  // parsed by Faults
};

Result<Scenario> load_scenario(const std::filesystem::path& file);
Result<Scenario> parse_scenario(const std::string& yaml_text, const std::string& origin);

// (major, minor) of a "1.8" / "v1.8.2" version string; (0,0) when unparsable.
std::pair<int, int> parse_version(std::string_view v);

}  // namespace kvb::testcluster
