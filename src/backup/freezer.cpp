#include "backup/freezer.h"

#include "backup/freezer_detail.h"

#include "common/sanitize.h"
#include "kube/object.h"
#include "kubevirt/resources.h"

#include <thread>

namespace kvb::backup {
using kubevirt::FreezeState;
using rules::FreezeEvidence;

namespace freezer_detail {

record::ExecutionRecord api_record(const std::string& phase, const std::string& ns, const std::string& vmi, std::string_view sub,
                                   const kubevirt::FreezeCall& c) {
  record::ExecutionRecord e;
  e.phase = phase;
  e.rule = "subresource";
  e.command = {sub == "guestosinfo" ? "GET" : "PUT", kubevirt::freeze_api_path(ns, vmi, sub)};
  e.duration_ms = static_cast<double>(c.duration.count());
  e.attempts = 1;
  e.exit_code = c.error ? -1 : 0;
  e.verdict = c.error ? "error: " + sanitize_foreign(c.error->message) : "succeeded";
  return e;
}

// A failed exec that never started (the API refused it) cannot land later; one whose stream was lost may.
bool never_started(const Status& st) {
  return !st && (st.error().http_status != 0 || st.error().code == Errc::kInvalidArgument);
}

void pause(std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }

}  // namespace freezer_detail

using namespace freezer_detail;

std::vector<record::ExecutionRecord> execution_records(const std::string& phase, const std::vector<rules::ActionRun>& runs) {
  std::vector<record::ExecutionRecord> out;
  for (const auto& r : runs) {
    record::ExecutionRecord e;
    e.phase = phase;
    e.rule = r.rule;
    e.pod = r.pod;
    e.container = r.container;
    e.command = r.command;
    e.exit_code = r.exit_code;
    e.attempts = r.attempts;
    e.duration_ms = std::chrono::duration<double, std::milli>(r.finished - r.started).count();
    e.verdict = sanitize_foreign(r.verdict);
    e.stdout_excerpt = sanitize_foreign(r.out.substr(0, 2048));
    e.stderr_excerpt = sanitize_foreign(r.err.substr(0, 2048));
    out.push_back(std::move(e));
  }
  return out;
}

Freezer::Freezer(std::shared_ptr<rules::PodExec> exec, std::shared_ptr<kubevirt::FreezeApi> api, const BackupSpec& spec)
    : exec_(std::move(exec)), api_(std::move(api)), spec_(spec) {}

FreezeOutcome Freezer::freeze(const VmPlan& vm, std::stop_token stop) {
  if (vm.freeze == FreezeKind::kSubresource) return freeze_subresource(vm);
  return freeze_exec(vm, stop);
}

HoldCheck Freezer::check_held(const VmPlan& vm) {
  auto c = api_->status(vm.vm.ns, vm.vm.name);
  return HoldCheck{c.state, now(), c.detail};
}

FreezeOutcome Freezer::freeze_exec(const VmPlan& vm, std::stop_token stop) {
  FreezeOutcome out;
  out.requested_at = now();
  out.started = MonoClock::now();
  out.attempted = true;
  auto pod = rules::pod_info(*vm.vm.pod);
  std::string vmi = vm.vm.vmi ? std::string(kube::name_of(*vm.vm.vmi)) : vm.vm.name;
  // What the pre items did to this VM, in order: the last word counts.
  FreezeEvidence state = FreezeEvidence::kUnknown;
  std::string reason;
  bool saw_freezer = false;
  for (const auto& item : vm.pre) {
    auto left = spec_.freeze_deadline - std::chrono::duration_cast<std::chrono::milliseconds>(MonoClock::now() - out.started);
    if (left <= std::chrono::milliseconds(0) || stop.stop_requested()) {
      out.evidence = FreezeEvidence::kFailed;
      out.reason = stop.stop_requested() ? "interrupted during the freeze" : "the freeze commands took longer than --freeze-deadline";
      return out;
    }
    rules::ExecutorOptions eo;
    eo.max_attempts = 2;
    eo.retry_delay = std::chrono::milliseconds(200);
    eo.wait_limit = left;  // abandoned, not stopped, at the deadline: it may still land (thaw() watches it)
    auto run = rules::Executor(exec_, eo).run_item(item.origin, item, pod, stop);
    auto recs = execution_records("pre", run.runs);
    out.executions.insert(out.executions.end(), recs.begin(), recs.end());
    if (run.background) out.background.push_back(run.background);
    for (auto& r : run.runs) {
      if (r.running) out.still_running.push_back(r.running);
      else if (!r.background && !r.status && !never_started(r.status)) out.end_unknown = true;
    }
    if (!run.ok()) {
      out.evidence = FreezeEvidence::kFailed;
      out.reason = sanitize_foreign(run.status.error().message);
      return out;
    }
    for (const auto& r : run.runs) {
      if (r.background) continue;
      auto call = rules::analyze_command(r.command);
      if (!call.is_freezer) continue;
      saw_freezer = true;
      bool this_vm = call.name == vmi && call.ns == vm.vm.ns;
      if (call.freeze && !this_vm) {
        state = FreezeEvidence::kNotFrozen;
        reason = "the pre-exec command freezes " + call.ns + "/" + call.name + ", not this VM";
        break;
      }
      if (!this_vm) continue;
      if (call.unfreeze) {
        state = FreezeEvidence::kNotFrozen;
        reason = "a pre-exec command unfroze this VM again (" + sanitize_foreign(r.verdict) + ")";
        continue;
      }
      auto v = rules::freezer_verdict(true, r.exit_code, r.err);
      // The weakest evidence of the freezes decides, until a later command undoes them.
      if (state == FreezeEvidence::kUnknown || state == FreezeEvidence::kFrozen || v.evidence != FreezeEvidence::kFrozen) {
        state = v.evidence;
        reason = v.reason;
      }
    }
  }
  out.frozen_at = now();
  out.confirmed = MonoClock::now();
  if (!saw_freezer) {
    auto c = api_->status(vm.vm.ns, vm.vm.name);
    out.executions.push_back(api_record("pre", vm.vm.ns, vm.vm.name, "guestosinfo", c));
    if (c.state == FreezeState::kFrozen) {
      state = FreezeEvidence::kFrozen;
      reason = "the guest agent reports frozen file systems (" + c.detail + ")";
    } else if (c.state == FreezeState::kError) {
      state = FreezeEvidence::kUnknown;
      reason = "the guest agent could not be asked whether the guest is frozen: " + c.detail;
    } else {
      state = FreezeEvidence::kNotFrozen;
      reason = "the pre-exec rule ran, but the guest reports " + std::string(kubevirt::to_string(c.state));
    }
  }
  out.evidence = state;
  out.reason = reason;
  return out;
}

FreezeOutcome Freezer::freeze_subresource(const VmPlan& vm) {
  FreezeOutcome out;
  out.requested_at = now();
  out.started = MonoClock::now();
  out.attempted = true;
  auto c = api_->freeze(vm.vm.ns, vm.vm.name, vm.auto_thaw.value_or(spec_.unfreeze_timeout()));
  out.frozen_at = now();
  out.confirmed = MonoClock::now();
  out.executions.push_back(api_record("pre", vm.vm.ns, vm.vm.name, "freeze", c));
  switch (c.state) {
    case FreezeState::kFrozen:
      out.evidence = FreezeEvidence::kFrozen;
      out.reason = "KubeVirt's freeze API answered 200";
      break;
    case FreezeState::kNoAgent:
    case FreezeState::kNotRunning:
      out.evidence = FreezeEvidence::kNotFrozen;
      out.reason = sanitize_foreign(c.detail);
      break;
    default:
      out.evidence = FreezeEvidence::kFailed;
      out.reason = sanitize_foreign(c.detail);
      // No answer: the launcher may still freeze the guest after we gave up.
      if (c.error && c.error->http_status == 0) out.end_unknown = true;
  }
  return out;
}

}  // namespace kvb::backup
