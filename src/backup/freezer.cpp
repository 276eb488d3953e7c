#include "backup/freezer.h"

#include "common/duration.h"
#include "kube/object.h"
#include "kubevirt/resources.h"

#include <boost/json.hpp>

#include <thread>

namespace kvb::backup {
namespace json = boost::json;
using rules::FreezeEvidence;

namespace {
// What an unfreeze answers when Windows VSS already released the freeze.
constexpr const char* kVssLimit = "fsfreeze is limited up to 10 seconds";
}  // namespace

std::vector<ExecutionRecord> execution_records(const std::string& phase, const std::vector<rules::ActionRun>& runs) {
  std::vector<ExecutionRecord> out;
  for (const auto& r : runs) {
    ExecutionRecord e;
    e.phase = phase;
    e.rule = r.rule;
    e.pod = r.pod;
    e.container = r.container;
    e.command = r.command;
    e.exit_code = r.exit_code;
    e.attempts = r.attempts;
    e.duration_ms = std::chrono::duration<double, std::milli>(r.finished - r.started).count();
    e.verdict = r.verdict;
    e.stdout_excerpt = r.out.substr(0, 2048);
    e.stderr_excerpt = r.err.substr(0, 2048);
    out.push_back(std::move(e));
  }
  return out;
}

Freezer::Freezer(std::shared_ptr<kube::Client> client, const BackupSpec& spec) : client_(std::move(client)), spec_(spec) {}

FreezeOutcome Freezer::freeze(const VmPlan& vm, std::stop_token stop) {
  if (vm.method == "subresource") return freeze_subresource(vm);
  return freeze_exec(vm, stop);
}

ThawOutcome Freezer::thaw(const VmPlan& vm, FreezeOutcome& f) {
  if (f.background) {
    auto released = f.background->release(std::chrono::seconds(30));
    auto recs = execution_records("pre", released);
    f.executions.insert(f.executions.end(), recs.begin(), recs.end());
  }
  if (vm.method == "subresource") return thaw_subresource(vm);
  return thaw_exec(vm);
}

FreezeEvidence Freezer::ask_guest_agent(const VmPlan& vm, std::string& reason) {
  kube::CallOptions o;
  o.critical = true;
  auto info = client_->subresource("GET", kubevirt::kVmiSubresources, vm.vm.ns, vm.vm.name, "guestosinfo", std::nullopt, o);
  if (!info) {
    reason = "the guest agent could not be asked whether the guest is frozen: " + info.error().message;
    return FreezeEvidence::kUnknown;
  }
  std::string status(kube::str_at(*info, {"fsFreezeStatus"}));
  if (status == "frozen") {
    reason = "the guest agent reports frozen file systems (guestosinfo fsFreezeStatus=frozen)";
    return FreezeEvidence::kFrozen;
  }
  reason = "the pre-exec rule ran, but the guest agent reports file systems \"" + (status.empty() ? std::string("thawed") : status) + "\"";
  return FreezeEvidence::kNotFrozen;
}

FreezeOutcome Freezer::freeze_exec(const VmPlan& vm, std::stop_token stop) {
  FreezeOutcome out;
  rules::ExecutorOptions eo;
  eo.max_attempts = 2;
  eo.retry_delay = std::chrono::milliseconds(200);
  rules::Executor ex(client_, eo);
  auto pod = rules::pod_info(*vm.vm.pod);
  out.requested_at = WallClock::now();
  out.attempted = true;
  bool saw_freezer = false;
  FreezeEvidence evidence = FreezeEvidence::kUnknown;
  std::string reason;
  for (auto item : vm.pre) {
    // A freeze command may not outlast --freeze-deadline: a hung exec is
    // abandoned and the thaw runs.
    for (auto& a : item.actions) a.timeout = std::min(a.timeout, spec_.freeze_deadline);
    auto run = ex.run_item(item.origin, item, pod, stop);
    auto recs = execution_records("pre", run.runs);
    out.executions.insert(out.executions.end(), recs.begin(), recs.end());
    if (run.background) {
      if (!out.background) out.background = run.background;
      else out.background = run.background;  // one background set per VM is kept; earlier ones were released on failure
    }
    if (!run.ok()) {
      out.evidence = FreezeEvidence::kFailed;
      out.reason = run.status.error().message;
      return out;
    }
    for (const auto& r : run.runs) {
      if (r.background) continue;
      auto call = rules::analyze_command(r.command);
      if (!call.is_freezer || !call.freeze) continue;
      saw_freezer = true;
      auto v = rules::freezer_verdict(true, r.exit_code, r.err);
      if (call.name != vm.vm.name || call.ns != vm.vm.ns) {
        v = {FreezeEvidence::kNotFrozen, "the pre-exec command freezes " + call.ns + "/" + call.name + ", not this VM"};
      }
      // The weakest evidence of all freezer runs decides.
      if (evidence == FreezeEvidence::kUnknown || v.evidence != FreezeEvidence::kFrozen) {
        evidence = v.evidence;
        reason = v.reason;
      }
    }
  }
  out.frozen_at = WallClock::now();
  if (!saw_freezer) evidence = ask_guest_agent(vm, reason);
  out.evidence = evidence;
  out.reason = reason;
  return out;
}

FreezeOutcome Freezer::freeze_subresource(const VmPlan& vm) {
  FreezeOutcome out;
  auto timeout = std::chrono::duration_cast<std::chrono::seconds>(spec_.freeze_deadline) + std::chrono::seconds(60);
  json::value body = json::object{{"unfreezeTimeout", format_duration(timeout)}};
  kube::CallOptions o;
  o.retry = false;  // a freeze that timed out on our side may still happen: no blind repeat
  o.timeout = std::chrono::seconds(90);
  out.requested_at = WallClock::now();
  out.attempted = true;
  auto r = client_->subresource("PUT", kubevirt::kVmiSubresources, vm.vm.ns, vm.vm.name, "freeze", body, o);
  out.frozen_at = WallClock::now();
  ExecutionRecord e;
  e.phase = "pre";
  e.rule = "subresource";
  e.command = {"PUT", "/apis/subresources.kubevirt.io/v1/namespaces/" + vm.vm.ns + "/virtualmachineinstances/" + vm.vm.name + "/freeze"};
  e.duration_ms = std::chrono::duration<double, std::milli>(*out.frozen_at - *out.requested_at).count();
  e.attempts = 1;
  if (r) {
    e.exit_code = 0;
    e.verdict = "succeeded";
    out.evidence = FreezeEvidence::kFrozen;
    out.reason = "KubeVirt's freeze API answered 200";
  } else {
    e.verdict = "error: " + r.error().message;
    out.evidence = r.error().message.find("guest agent is not connected") != std::string::npos ? FreezeEvidence::kNotFrozen
                                                                                               : FreezeEvidence::kFailed;
    out.reason = r.error().message;
  }
  out.executions.push_back(std::move(e));
  return out;
}

ThawOutcome Freezer::thaw_exec(const VmPlan& vm) {
  ThawOutcome out;
  auto pod = rules::pod_info(*vm.vm.pod);
  std::vector<rules::RuleItem> items = vm.post;
  out.ok = true;
  if (items.empty()) {
    // A custom pre rule without a post rule: never leave the guest frozen.
    rules::RuleItem item;
    item.pod_namespace = vm.vm.ns;
    item.pod_name = vm.vm.pod_name();
    item.container = kubevirt::kComputeContainer;
    item.origin = "kvbackup safety thaw";
    rules::Action a;
    a.argv = {kubevirt::kVirtFreezer, "--unfreeze", "--name", vm.vm.name, "--namespace", vm.vm.ns};
    item.actions.push_back(a);
    items.push_back(item);
  }
  for (auto& item : items) {
    for (auto& a : item.actions) a.timeout = std::min(a.timeout, spec_.thaw_attempt_timeout);
  }
  // One attempt per round: a guest that thawed itself (Windows VSS) says so
  // only to the first unfreeze, and a repeat would succeed and hide it.
  rules::ExecutorOptions once;
  once.max_attempts = 1;
  once.critical = true;
  out.requested_at = WallClock::now();
  auto give_up = std::chrono::steady_clock::now() + spec_.thaw_retry_budget;
  auto backoff = std::chrono::milliseconds(200);
  std::vector<bool> done(items.size(), false);
  for (int round = 0;; ++round) {
    // The items still to thaw, in order; those that succeeded are not repeated.
    std::string failure;
    for (size_t i = 0; i < items.size(); ++i) {
      if (done[i]) continue;
      auto run = rules::Executor(client_, once).run_item(items[i].origin, items[i], pod, {});
      auto recs = execution_records("post", run.runs);
      out.executions.insert(out.executions.end(), recs.begin(), recs.end());
      std::string msg = run.ok() ? std::string() : run.status.error().message;
      for (const auto& r : run.runs) {
        auto call = rules::analyze_command(r.command);
        if (run.ok() && call.is_freezer && call.unfreeze) {
          // Exit 0 proves nothing: "No guest agent, exiting" thaws nothing.
          auto v = rules::freezer_verdict(false, r.exit_code, r.err);
          if (v.evidence != rules::FreezeEvidence::kThawed) msg = "virt-freezer did not confirm the thaw: " + v.reason;
        }
        if (round == 0 && (r.err.find(kVssLimit) != std::string::npos || r.out.find(kVssLimit) != std::string::npos)) {
          out.guest_thawed_itself = true;
        }
      }
      if (round == 0 && msg.find(kVssLimit) != std::string::npos) out.guest_thawed_itself = true;
      if (out.guest_thawed_itself) {
        out.reason = "the guest thawed itself before the thaw (Windows VSS holds a freeze 10 s at most)";
        msg.clear();
      }
      if (msg.empty()) done[i] = true;
      else if (failure.empty()) failure = msg;
    }
    if (failure.empty()) break;
    out.reason = failure;
    if (vm.method == "exec-builtin") {
      // Second, independent path: KubeVirt's unfreeze API (needs no pods/exec).
      ThawOutcome api = thaw_subresource(vm);
      out.executions.insert(out.executions.end(), api.executions.begin(), api.executions.end());
      if (api.ok) {
        out.reason = "the thaw command failed (" + failure + "); thawed through KubeVirt's unfreeze API";
        break;
      }
    }
    if (std::chrono::steady_clock::now() + backoff > give_up) {
      out.ok = false;
      break;
    }
    // The agent may be back in a moment (a disconnect while frozen): keep trying.
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
  }
  out.thawed_at = WallClock::now();
  return out;
}

ThawOutcome Freezer::thaw_subresource(const VmPlan& vm) {
  ThawOutcome out;
  kube::CallOptions o;
  o.critical = true;
  o.retry = false;  // the first answer tells whether the guest thawed itself
  out.requested_at = WallClock::now();
  auto r = client_->subresource("PUT", kubevirt::kVmiSubresources, vm.vm.ns, vm.vm.name, "unfreeze", std::nullopt, o);
  if (!r && r.error().message.find(kVssLimit) == std::string::npos && r.error().is_transient()) {
    o.retry = true;
    o.retry_budget = std::chrono::seconds(30);
    r = client_->subresource("PUT", kubevirt::kVmiSubresources, vm.vm.ns, vm.vm.name, "unfreeze", std::nullopt, o);
  }
  out.thawed_at = WallClock::now();
  ExecutionRecord e;
  e.phase = "post";
  e.rule = "subresource";
  e.command = {"PUT", "/apis/subresources.kubevirt.io/v1/namespaces/" + vm.vm.ns + "/virtualmachineinstances/" + vm.vm.name + "/unfreeze"};
  e.duration_ms = std::chrono::duration<double, std::milli>(*out.thawed_at - *out.requested_at).count();
  e.attempts = 1;
  e.exit_code = r ? 0 : -1;
  e.verdict = r ? "succeeded" : "error: " + r.error().message;
  out.executions.push_back(e);
  out.ok = r.has_value();
  if (!r) {
    if (r.error().message.find(kVssLimit) != std::string::npos) {
      out.ok = true;
      out.guest_thawed_itself = true;
      out.reason = "the guest thawed itself before the thaw (Windows VSS holds a freeze 10 s at most)";
    } else {
      out.reason = r.error().message;
    }
  }
  return out;
}

}  // namespace kvb::backup
