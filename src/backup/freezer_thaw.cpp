// The thaw half of the Freezer (backup/freezer.h): the post rule, kvbackup's
// own confirmed thaw in rounds, and the watch over freezes that may land late.
#include "backup/freezer.h"

#include "backup/freezer_detail.h"
#include "common/sanitize.h"
#include "kube/object.h"
#include "kubevirt/resources.h"

namespace kvb::backup {
using kubevirt::FreezeState;
using rules::FreezeEvidence;
using namespace freezer_detail;

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
