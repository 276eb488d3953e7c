#include "backup/freezer.h"

#include "common/sanitize.h"
#include "kube/object.h"
#include "kubevirt/resources.h"

#include <thread>

namespace kvb::backup {
using kubevirt::FreezeState;
using rules::FreezeEvidence;

namespace {

WallTime now() { return WallClock::now(); }

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

}  // namespace

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

ThawOutcome Freezer::run_post_items(const VmPlan& vm) {
  ThawOutcome out;
  auto pod = rules::pod_info(*vm.vm.pod);
  std::string vmi = vm.vm.vmi ? std::string(kube::name_of(*vm.vm.vmi)) : vm.vm.name;
  // One attempt: a guest that thawed itself (Windows VSS) says so only to the first unfreeze.
  rules::ExecutorOptions once;
  once.max_attempts = 1;
  once.critical = true;
  std::string failure;
  for (auto item : vm.post) {
    for (auto& a : item.actions) a.timeout = std::min(a.timeout, spec_.thaw_attempt_timeout);
    auto run = rules::Executor(exec_, once).run_item(item.origin, item, pod, {});
    auto recs = execution_records("post", run.runs);
    out.executions.insert(out.executions.end(), recs.begin(), recs.end());
    if (!run.ok() && failure.empty()) failure = sanitize_foreign(run.status.error().message);
    for (const auto& r : run.runs) {
      if (kubevirt::says_vss_limit(r.err) || kubevirt::says_vss_limit(r.out) ||
          (!r.status && kubevirt::says_vss_limit(r.status.error().message))) {
        out.guest_thawed_itself = true;
      }
      auto call = rules::analyze_command(r.command);
      if (!call.is_freezer || !call.unfreeze || call.name != vmi || call.ns != vm.vm.ns) continue;
      auto v = rules::freezer_verdict(false, r.exit_code, r.err);
      if (r.succeeded() && v.evidence == FreezeEvidence::kThawed) out.ok = true;
      else if (failure.empty()) failure = "virt-freezer did not confirm the thaw: " + v.reason;
    }
  }
  if (out.guest_thawed_itself) {
    out.ok = true;
    out.reason = "the guest thawed itself before the thaw (Windows VSS holds a freeze 10 s at most)";
  } else if (!out.ok) {
    out.reason = vm.post.empty() ? std::string("no post-exec rule item thaws this VM")
                 : failure.empty() ? std::string("the post-exec rule ran but did not confirm a thaw of this VM")
                                   : failure;
  }
  return out;
}

void Freezer::own_thaw_round(const std::string& ns, const std::string& vm, const std::string& pod, FreezeKind kind, bool first,
                             bool frozen_for_certain, ThawOutcome& out) {
  if (kind != FreezeKind::kSubresource && !pod.empty()) {
    kube::ExecRequest req;
    req.ns = ns;
    req.pod = pod;
    req.container = kubevirt::kComputeContainer;
    req.command = kubevirt::virt_freezer_argv(kubevirt::FreezerMode::kUnfreeze, vm, ns);
    req.timeout = spec_.thaw_attempt_timeout;
    req.critical = true;
    rules::ActionRun run;
    run.rule = "kvbackup thaw";
    run.ns = ns;
    run.pod = pod;
    run.container = req.container;
    run.command = req.command;
    run.attempts = 1;
    run.started = now();
    auto r = exec_->start(req)->wait();
    run.finished = now();
    run.status = r.status;
    run.exit_code = r.exit_code;
    run.out = r.out;
    run.err = r.err;
    auto v = rules::freezer_verdict(false, r.exit_code, r.err);
    run.verdict = r.succeeded() ? "succeeded" : r.status ? "failed (exit " + std::to_string(r.exit_code) + ")" : "error: " + r.status.error().message;
    auto recs = execution_records("post", {run});
    out.executions.insert(out.executions.end(), recs.begin(), recs.end());
    if (first && (kubevirt::says_vss_limit(r.err) || (!r.status && kubevirt::says_vss_limit(r.status.error().message)))) {
      out.ok = out.guest_thawed_itself = true;
      out.reason = "the guest thawed itself before the thaw (Windows VSS holds a freeze 10 s at most)";
      return;
    }
    if (r.succeeded() && v.evidence == FreezeEvidence::kThawed) {
      out.ok = true;
      return;
    }
    out.reason = r.status ? "virt-freezer did not confirm the thaw: " + v.reason : sanitize_foreign(r.status.error().message);
  }
  // An independent path: KubeVirt's unfreeze API (needs no pods/exec).
  auto c = api_->unfreeze(ns, vm);
  out.executions.push_back(api_record("post", ns, vm, "unfreeze", c));
  switch (c.state) {
    case FreezeState::kThawed: out.ok = true; break;
    case FreezeState::kNotRunning:
      out.ok = true;
      out.reason = "the VMI is not running any more: nothing of it is frozen";
      break;
    case FreezeState::kVssLimitReached:
      out.ok = true;
      if (first) {
        out.guest_thawed_itself = true;
        out.reason = "the guest thawed itself before the thaw (Windows VSS holds a freeze 10 s at most)";
      }
      break;
    case FreezeState::kNoAgent:
      if (!frozen_for_certain) {
        out.ok = true;
        out.reason = "no guest agent is connected: the guest was never frozen";
        break;
      }
      [[fallthrough]];
    default: out.reason = (out.reason.empty() ? "" : out.reason + "; ") + "unfreeze API: " + sanitize_foreign(c.detail);
  }
}

ThawOutcome Freezer::thaw_verified(const std::string& ns, const std::string& vm, const std::string& pod, FreezeKind kind,
                                   bool frozen_for_certain) {
  ThawOutcome out;
  out.requested_at = now();
  auto give_up = MonoClock::now() + spec_.thaw_retry_budget;
  auto backoff = std::chrono::milliseconds(200);
  for (bool first = true;; first = false) {
    own_thaw_round(ns, vm, pod, kind, first, frozen_for_certain, out);
    if (out.ok || MonoClock::now() + backoff > give_up) break;
    pause(backoff);  // the agent may be back in a moment (a disconnect while frozen)
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
  }
  if (out.ok) out.thawed_at = now();
  return out;
}

void Freezer::guard_late_freeze(const VmPlan& vm, FreezeOutcome& f, ThawOutcome& out) {
  auto deadline = f.started + spec_.late_freeze_bound;
  auto left = [&] {
    return std::max(std::chrono::milliseconds(0),
                    std::chrono::duration_cast<std::chrono::milliseconds>(deadline - MonoClock::now()));
  };
  bool all_ended = true;
  for (auto& s : f.still_running) {
    if (!s->wait_for(left())) {
      s->cancel();  // given up on: the launcher's own deadline has passed by now
      all_ended = false;
    }
  }
  f.still_running.clear();
  if (f.end_unknown) {
    // No way to see it end: look at the guest until the freeze can no longer land.
    while (left() > std::chrono::milliseconds(0)) {
      auto c = api_->status(vm.vm.ns, vm.vm.name);
      if (c.state == FreezeState::kFrozen) {
        out.problems.push_back("an abandoned freeze landed after the thaw (" + c.detail + "); kvbackup thawed the guest again");
        auto again = thaw_verified(vm.vm.ns, vm.vm.name, vm.vm.pod_name(), vm.freeze, true);
        out.executions.insert(out.executions.end(), again.executions.begin(), again.executions.end());
      }
      pause(std::min(left(), std::chrono::milliseconds(1000)));
    }
  }
  // Whatever the abandoned freeze did, thaw once more after it ended, and confirm it.
  auto last = thaw_verified(vm.vm.ns, vm.vm.name, vm.vm.pod_name(), vm.freeze, false);
  out.executions.insert(out.executions.end(), last.executions.begin(), last.executions.end());
  out.ok = last.ok;
  if (!last.ok) out.reason = "after an abandoned freeze: " + last.reason;
  if (!all_ended) out.problems.push_back("a freeze command was still running " + std::to_string(spec_.late_freeze_bound.count()) +
                                         " ms after it started; its stream was closed");
}

ThawOutcome Freezer::thaw(const VmPlan& vm, FreezeOutcome& f) {
  auto requested = now();
  for (auto& b : f.background) {
    auto recs = execution_records("pre", b->release(std::chrono::seconds(30)));
    f.executions.insert(f.executions.end(), recs.begin(), recs.end());
  }
  f.background.clear();
  ThawOutcome out;
  if (vm.freeze == FreezeKind::kSubresource) own_thaw_round(vm.vm.ns, vm.vm.name, "", vm.freeze, true, f.frozen(), out);
  else out = run_post_items(vm);
  out.requested_at = requested;
  if (!out.ok && f.evidence == FreezeEvidence::kNotFrozen && !f.may_land_late()) {
    // virt-freezer (or the agent) said nothing was frozen: the post rule ran, nothing is owed.
    out.ok = true;
    out.reason = "nothing was frozen (" + f.reason + ")";
  }
  if (!out.ok) {
    // kvbackup's own verified thaw, in rounds: the guest is never left frozen on a rule's word.
    std::string why = out.reason;
    auto own = thaw_verified(vm.vm.ns, vm.vm.name, vm.freeze == FreezeKind::kSubresource ? "" : vm.vm.pod_name(), vm.freeze,
                             f.frozen());
    out.executions.insert(out.executions.end(), own.executions.begin(), own.executions.end());
    out.ok = own.ok;
    out.guest_thawed_itself = out.guest_thawed_itself || own.guest_thawed_itself;
    if (own.ok && vm.freeze != FreezeKind::kSubresource) {
      out.problems.push_back("the post-exec rule did not confirm the thaw (" + why + "); kvbackup thawed the guest itself");
    }
    out.reason = own.ok ? (own.reason.empty() ? why : own.reason) : why + "; " + own.reason;
  }
  if (f.may_land_late()) guard_late_freeze(vm, f, out);
  if (out.ok) out.thawed_at = now();
  return out;
}

}  // namespace kvb::backup
