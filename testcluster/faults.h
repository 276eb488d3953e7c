// Faults: misbehaviour injected into the test cluster, from the scenario's
// `faults:` list or POST /testcluster/v1/faults (see docs/testcluster.md).
//
// Each fault has a type, optional match fields (verb, resource, namespace,
// name, vm, pod, container, command substring, pvc), a firing rate (0..1) and
// a count limit (0 = unlimited). A fault that fires consumes one count.
#pragma once

#include "common/error.h"
#include "testcluster/scenario.h"

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>

#include <optional>
#include <random>
#include <string>
#include <vector>

namespace kvb::testcluster {

struct Fault {
  uint64_t id = 0;
  std::string type;  // api-error latency exec-hang exec-fail exec-drop watch-disconnect
                     // agent-disconnect snapshot-cut-delay snapshot-fail export-restart
                     // export-unreachable export-wrong-token restore-pending export-no-ingress
  std::string verb, resource, ns, name, vm, pod, container, command, pvc;
  double rate = 1.0;
  int64_t count = 0;
  int64_t hits = 0;
  int code = 500;
  std::string message;
  Duration delay{0};
  int64_t retry_after = -1;
  int exit_code = 1;
  Duration duration{std::chrono::seconds(2)};
  int64_t after_bytes = 0;  // export-restart: export connections closed after this many bytes (each of `count` times)

  boost::json::object to_json() const;
};

struct RequestInfo {
  std::string verb;      // get list watch create update patch delete
  std::string resource;  // plural, or plural/subresource ("pods/exec")
  std::string ns;
  std::string name;
};

class Faults {
 public:
  Result<Fault> add(const boost::json::value& spec, const std::string& origin);
  void clear() { faults_.clear(); }
  boost::json::array to_json() const;

  const Fault* api_error(const RequestInfo& r);
  std::optional<Duration> latency(const RequestInfo& r);
  const Fault* exec(const std::string& ns, const std::string& pod, const std::string& vm, const std::string& container,
                    const std::string& command_line);
  std::optional<Duration> snapshot_cut_delay(const std::string& ns, const std::string& vm, const std::string& pvc);
  const Fault* snapshot_failure(const std::string& ns, const std::string& vm, const std::string& pvc);
  const Fault* agent_disconnect(const std::string& ns, const std::string& vm);
  // restore-pending: a claim `pvc` in `ns` made from a VolumeSnapshot is not provisioned.
  const Fault* restore_pending(const std::string& ns, const std::string& pvc);
  // export-unreachable / export-wrong-token for the export ns/name (decided once per export).
  const Fault* export_fault(const std::string& type, const std::string& ns, const std::string& name);
  // export-no-ingress (namespace, name of the export): a state, not an event, so it never counts hits.
  bool export_no_ingress(const std::string& ns, const std::string& name) const;

 private:
  Fault* fire(const std::function<bool(const Fault&)>& match);
  std::vector<Fault> faults_;
  uint64_t next_id_ = 1;
  std::mt19937_64 rng_{12345};
};

}  // namespace kvb::testcluster
