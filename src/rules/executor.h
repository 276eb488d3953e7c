// Running rules against pods, with Stork's semantics and kvbackup's bounds.
//
// Items run in order, and each item's actions in order. An action runs on
// every Running pod its item matches, in parallel (runInSinglePod: on the first
// one only). Stork actions run as `sh -c <value>` in the item's container;
// argv actions (Velero, built-in) run without a shell. A pod with several
// containers and no container named is an error naming the pod. No pod
// matched is a warning kept in the result.
//
// Each action has a timeout (default 60s) and an onError policy (Fail stops
// the rule; Continue records the failure and goes on). Failed foreground
// actions are retried within a small budget (ExecutorOptions; Stork's 12 x 5 s
// would hold a freeze window for a minute). Background actions replace
// ${WAIT_CMD} with a wait that prints a marker and blocks on its stdin; the
// executor waits until every pod has printed the marker, keeps the exec
// streams, and releases them (a newline, then end of stdin) when told, on any
// failure, or when its hold limit passes. A dead kvbackup closes the streams,
// which releases the waits too.
//
// Commands run through a PodExec (kube::start_exec on a cluster, a fake in
// tests). With ExecutorOptions::wait_limit, a foreground command still running
// after that long is reported "timed out" but NOT stopped: its session is
// handed back in ActionRun::running, so that a caller who abandoned a freeze
// can see when it really ends (closing an exec stream does not stop the
// command in the container everywhere).
//
// Threads: an Executor may be used by one thread at a time; many Executors
// may share one PodExec and one Client. BackgroundActions may be released from
// any thread, once.
#pragma once

#include "common/error.h"
#include "common/time.h"
#include "kube/client.h"
#include "kube/exec.h"
#include "rules/model.h"

#include <boost/json/object.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

namespace kvb::rules {

struct PodInfo {
  std::string ns;
  std::string name;
  std::string phase;
  kube::Labels labels;
  std::vector<std::string> containers;
};
PodInfo pod_info(const boost::json::object& pod);

// Starts commands in pods.
class PodExec {
 public:
  virtual ~PodExec() = default;
  virtual std::shared_ptr<kube::ExecSession> start(kube::ExecRequest request, kube::ExecObserver observer = {}) = 0;
};
std::shared_ptr<PodExec> cluster_pod_exec(std::shared_ptr<kube::Client> client);

// Lists the pods of a namespace that match a selector.
using PodLister = std::function<Result<std::vector<PodInfo>>(const std::string& ns, const kube::LabelSelector& sel)>;
PodLister cluster_pod_lister(std::shared_ptr<kube::Client> client);

struct ExecutorOptions {
  int max_attempts = 2;                           // per foreground action and pod
  std::chrono::milliseconds retry_delay{500};
  bool retry_after_timeout = false;               // a timed-out command may still be running
  std::chrono::milliseconds background_ready_timeout{60'000};  // until every pod reached ${WAIT_CMD}
  std::chrono::milliseconds background_max_hold{600'000};      // then released whatever happens
  bool critical = false;                          // skip client rate limiting (thaw)
  // Stop waiting for a foreground command after this long (or on a stop
  // request) without stopping it: see ActionRun::running. Unset: wait for its
  // end (the action's own timeout closes it), and a stop request cancels it.
  std::optional<std::chrono::milliseconds> wait_limit;
};

struct ActionRun {
  std::string rule;
  std::string ns;
  std::string pod;
  std::string container;
  std::vector<std::string> command;
  bool background = false;
  int attempts = 0;
  int exit_code = -1;
  std::string out;  // capped excerpts
  std::string err;
  Status status;    // the exec itself (API refusal, stream lost, timeout)
  std::string verdict;  // "succeeded", "failed (exit 1)", "timed out", "error: ...", with " (continued)" under onError Continue
  WallTime started{};
  WallTime finished{};
  bool continued = false;
  // A command abandoned at ExecutorOptions::wait_limit that was still running.
  std::shared_ptr<kube::ExecSession> running;

  bool succeeded() const { return status.has_value() && exit_code == 0; }
};

class BackgroundActions {
 public:
  ~BackgroundActions();
  size_t size() const { return held_.size(); }
  // Releases every held action and waits up to `timeout` for each to finish.
  std::vector<ActionRun> release(std::chrono::milliseconds timeout);

 private:
  friend class Executor;
  struct Held {
    ActionRun run;
    std::shared_ptr<kube::ExecSession> session;
  };
  std::vector<Held> held_;
  bool released_ = false;
};

struct RuleRun {
  std::vector<ActionRun> runs;
  std::vector<std::string> warnings;
  Status status;  // the failure that stopped the rule
  std::shared_ptr<BackgroundActions> background;
  int pods_matched = 0;
  bool ok() const { return status.has_value(); }
};

class Executor {
 public:
  Executor(std::shared_ptr<PodExec> exec, ExecutorOptions options);
  // Runs a rule in the given namespaces (a rule with metadata.namespace only there).
  RuleRun run(const Rule& rule, const std::vector<std::string>& namespaces, const PodLister& pods,
              std::stop_token stop = {});
  // Runs one item on one known pod (per-VM freeze/thaw).
  RuleRun run_item(const std::string& rule_name, const RuleItem& item, const PodInfo& pod, std::stop_token stop = {});

 private:
  Status run_action(const std::string& rule_name, const RuleItem& item, const Action& action,
                    const std::vector<PodInfo>& pods, RuleRun& out, std::stop_token stop);
  Status start_background(const std::string& rule_name, const RuleItem& item, const Action& action,
                          const std::vector<PodInfo>& pods, RuleRun& out, std::stop_token stop);

  std::shared_ptr<PodExec> exec_;
  ExecutorOptions options_;
};

// What ${WAIT_CMD} becomes: prints `marker` and waits for a line (or end) on stdin.
std::string wait_command(const std::string& marker);

}  // namespace kvb::rules
