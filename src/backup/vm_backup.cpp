#include "backup/vm_backup.h"

#include "common/duration.h"
#include "common/sanitize.h"
#include "kube/object.h"

#include <boost/json.hpp>

namespace kvb::backup {
using record::Consistency;
using record::VmPhase;

namespace {
long ms_between(std::optional<WallTime> a, std::optional<WallTime> b) {
  if (!a || !b) return 0;
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(*b - *a).count());
}
}  // namespace

VmBackup::VmBackup(BackupContext& ctx, const VmPlan& p) : ctx_(ctx), plan_(p), created_uids_(p.volumes.size()) {
  rec_.ns = p.vm.ns;
  rec_.name = p.vm.name;
  rec_.promised = p.promised;
  rec_.consistency = p.promised;
  rec_.reason = p.reason;
  rec_.phase = p.planned;
  rec_.freeze.kind = p.freeze;
  if (p.auto_thaw) rec_.freeze.auto_thaw_seconds = p.auto_thaw->count();
  rec_.problems = p.notes;
  for (const auto& v : p.volumes) {
    record::VolumeRecord vr;
    vr.name = v.volume.name;
    vr.pvc = v.volume.claim;
    vr.storage_class = v.storage_class;
    vr.snapshot_class = v.snapshot_class;
    vr.size = v.size;
    rec_.volumes.push_back(vr);
  }
}

record::VmRecord VmBackup::run(std::stop_token stop) {
  if (!ready_to_start(stop)) return rec_;
  if (!plan_.freezes()) return snapshot_unfrozen(stop, plan_.reason);
  // The priority lane (backup/freeze_gate.h): a freeze (and the lease taken
  // for it) starts only when the open windows have no work for the API server.
  FreezeGate::Token slot, window;
  if (ctx_.gate) {
    auto admitted = ctx_.gate->admit(stop);
    if (!admitted) {
      fail(admitted.error().message);
      return rec_;
    }
    slot = std::move(*admitted);
  }
  if (!take_lease(stop)) return rec_;
  bool frozen = freeze(stop);
  if (frozen && ctx_.gate) window = ctx_.gate->in_window();  // before the slot ends: no freeze slips in between
  slot.reset();
  if (!frozen) {
    bool not_frozen = freeze_.evidence == rules::FreezeEvidence::kNotFrozen;
    if (not_frozen && ctx_.spec.on_no_agent == OnNoAgent::kCrashConsistent) {
      ctx_.say(rec_.key() + ": not frozen (" + freeze_.reason + "); taking crash-consistent snapshots");
      return snapshot_unfrozen(stop, freeze_.reason);
    }
    if (not_frozen && ctx_.spec.on_no_agent == OnNoAgent::kSkip) {
      rec_.phase = VmPhase::kSkipped;
      rec_.consistency = Consistency::kNone;
      rec_.reason = freeze_.reason + " (--on-no-agent skip)";
      return rec_;
    }
    fail("freeze failed: " + freeze_.reason);
    ctx_.say(rec_.key() + ": " + rec_.reason);
    return rec_;
  }
  Status cut = create_snapshots();
  window.reset();  // waiting for the cut sends nothing
  if (cut) cut = wait_cut(freeze_.confirmed + ctx_.spec.freeze_deadline, stop);
  if (ctx_.gate) window = ctx_.gate->in_window();  // the hold check and the thaw
  if (cut) check_held();
  thaw();
  window.reset();
  judge(cut);
  finish(stop);
  return rec_;
}

bool VmBackup::ready_to_start(std::stop_token stop) {
  if (plan_.planned != VmPhase::kCompleted) {
    ctx_.say(rec_.key() + ": " + std::string(to_string(plan_.planned)) + ": " + plan_.reason);
    return false;
  }
  if (stop.stop_requested()) {
    fail("interrupted before the VM was started");
    return false;
  }
  // A run that lost its lock may already be being recovered by another
  // kvbackup (its journal entry thawed and removed): a guest frozen now
  // would have no journal entry to be thawed by. Start nothing more.
  if (ctx_.run_lock_held) {
    if (auto held = ctx_.run_lock_held(); !held) {
      fail("not started: the backup's run lock was lost (" + held.error().message +
           "), so no guest is frozen any more by this run; another kvbackup may be recovering it");
      ctx_.say(rec_.key() + ": " + rec_.reason);
      return false;
    }
  }
  return true;
}

bool VmBackup::take_lease(std::stop_token stop) {
  auto lease = ctx_.leases.acquire(rec_.ns, rec_.name, ctx_.spec.freeze_wait, stop);
  if (!lease) {
    fail(sanitize_foreign(lease.error().message));
    ctx_.say(rec_.key() + ": " + rec_.reason);
    return false;
  }
  lease_ = *lease;
  rec_.freeze.lease = lease_->describe();
  if (!lease_->waited_for.empty()) ctx_.say(rec_.key() + ": " + rec_.freeze.lease);
  return true;
}

bool VmBackup::freeze(std::stop_token stop) {
  freeze_ = ctx_.freezer.freeze(plan_, stop);
  rec_.freeze.requested_at = freeze_.requested_at;
  rec_.freeze.frozen_at = freeze_.frozen_at;
  rec_.freeze.evidence = std::string(rules::freeze_evidence_name(freeze_.evidence)) + (freeze_.reason.empty() ? "" : ": " + freeze_.reason);
  if (freeze_.frozen()) {
    ctx_.say(rec_.key() + ": frozen (" + std::string(to_string(plan_.freeze)) + ", " +
             std::to_string(ms_between(freeze_.requested_at, freeze_.frozen_at)) + " ms)");
    return true;
  }
  if (freeze_.attempted) {
    // The post rule runs whenever the pre rule started: the guest may be
    // frozen although the freeze failed, so its thaw takes the priority lane too.
    FreezeGate::Token window;
    if (ctx_.gate) window = ctx_.gate->in_window();
    thaw();
  }
  return false;
}

Status VmBackup::create_snapshots() {
  for (size_t i = 0; i < plan_.volumes.size(); ++i) {
    auto made = ctx_.tracker.create(plan_, plan_.volumes[i]);
    if (!made) {
      rec_.volumes[i].error = sanitize_foreign(made.error().message);
      return Error(made.error().code, rec_.volumes[i].error);
    }
    rec_.volumes[i].volume_snapshot = made->name;
    rec_.volumes[i].snapshot_uid = made->uid;
    created_uids_[i] = made->uid;
  }
  return ok();
}

std::vector<std::string> VmBackup::snapshot_names() const {
  std::vector<std::string> out;
  for (const auto& v : rec_.volumes) {
    if (!v.volume_snapshot.empty()) out.push_back(v.volume_snapshot);
  }
  return out;
}

Status VmBackup::wait_cut(MonoClock::time_point deadline, std::stop_token stop) {
  auto st = ctx_.tracker.wait_cut(rec_.ns, snapshot_names(), deadline, stop);
  if (st) return st;
  const auto& e = st.error();
  if (e.code == Errc::kTimeout) {
    return Error(e.code, "the snapshots were not cut within --freeze-deadline " + format_duration(ctx_.spec.freeze_deadline) +
                             " (" + e.message + ")");
  }
  if (e.code == Errc::kCancelled) return Error(e.code, "interrupted while waiting for the cut");
  return Error(e.code, sanitize_foreign(e.message));
}

void VmBackup::check_held() {
  held_ = ctx_.freezer.check_held(plan_);
  rec_.freeze.held_at = held_->at;
  rec_.freeze.hold = std::string(kubevirt::to_string(held_->state)) + " (" + sanitize_foreign(held_->detail) + ")";
}

void VmBackup::thaw() {
  thaw_ = ctx_.freezer.thaw(plan_, freeze_);
  rec_.executions = freeze_.executions;  // the pre runs, with the background holds released by the thaw
  rec_.executions.insert(rec_.executions.end(), thaw_->executions.begin(), thaw_->executions.end());
  rec_.freeze.thaw_requested_at = thaw_->requested_at;
  rec_.freeze.thawed_at = thaw_->thawed_at;
  rec_.freeze.thaw_ok = thaw_->ok;
  for (const auto& p : thaw_->problems) rec_.problems.push_back(p);
  if (thaw_->ok) {
    if (lease_) {
      if (auto st = ctx_.leases.release(*lease_); !st) {
        rec_.problems.push_back("could not give back " + lease_->describe() + ": " + sanitize_foreign(st.error().message));
      }
      lease_.reset();
    }
    if (freeze_.frozen()) {
      ctx_.say(rec_.key() + ": thawed (freeze window " + std::to_string(static_cast<long>(rec_.freeze.window_ms())) + " ms)");
    }
  } else {
    rec_.problems.push_back("the thaw was not confirmed (" + thaw_->reason +
                            "): the guest may stay frozen until its auto-thaw; run kvbackup recover");
    ctx_.say(rec_.key() + ": THAW NOT CONFIRMED: " + thaw_->reason);
  }
}

void VmBackup::note_cuts() {
  for (auto& v : rec_.volumes) {
    if (v.volume_snapshot.empty()) continue;
    auto s = ctx_.tracker.get(rec_.ns, v.volume_snapshot);
    if (!s) continue;
    if (auto e = kube::str_at(*s, {"status", "error", "message"}); !e.empty()) v.error = sanitize_foreign(e);
    // The content's creationTime has nanoseconds; the snapshot's is the fallback.
    std::optional<WallTime> cut;
    if (auto content = kube::str_at(*s, {"status", "boundVolumeSnapshotContentName"}); !content.empty()) {
      if (auto c = ctx_.cached(kube::resources::kVolumeSnapshotContents, "", std::string(content)); c && *c) {
        if (auto ns_time = kube::int_at(**c, {"status", "creationTime"})) {
          cut = WallTime(std::chrono::duration_cast<WallClock::duration>(std::chrono::nanoseconds(*ns_time)));
        }
      }
    }
    if (!cut) {
      if (auto t = parse_rfc3339(kube::str_at(*s, {"status", "creationTime"}))) cut = *t;
    }
    v.cut_at = cut;
  }
}

std::vector<CutSeen> VmBackup::cuts() {
  note_cuts();
  std::vector<CutSeen> out;
  for (size_t i = 0; i < rec_.volumes.size(); ++i) {
    const auto& v = rec_.volumes[i];
    CutSeen c;
    c.snapshot = rec_.ns + "/" + (v.volume_snapshot.empty() ? plan_.volumes[i].snapshot_name : v.volume_snapshot);
    c.created_uid = created_uids_[i];
    if (auto s = ctx_.tracker.get(rec_.ns, v.volume_snapshot)) c.seen_uid = std::string(kube::uid_of(*s));
    c.cut_at = v.cut_at;
    out.push_back(std::move(c));
  }
  return out;
}

void VmBackup::judge(const Status& cut, const std::vector<CutSeen>& group_cuts) {
  VerdictInput in;
  in.promised = plan_.promised;
  in.promise_reason = rec_.reason;
  in.froze = freeze_.frozen();
  in.freeze_reason = freeze_.reason;
  in.freeze_requested_at = freeze_.requested_at;
  in.frozen_at = freeze_.frozen_at;
  in.auto_thaw = plan_.auto_thaw;
  in.cut = cut;
  in.cuts = cuts();  // also reads this VM's cut times into the record
  if (!group_cuts.empty()) in.cuts = group_cuts;
  if (held_) {
    in.held = held_->state;
    in.held_at = held_->at;
    in.held_detail = held_->detail;
  }
  if (thaw_) {
    in.thaw_ok = thaw_->ok;
    in.guest_thawed_itself = thaw_->guest_thawed_itself;
    in.thaw_reason = thaw_->reason;
  }
  in.clock_skew = ctx_.spec.clock_skew;
  in.group = !group_cuts.empty();
  Verdict v = backup::judge(in);
  rec_.phase = v.phase;
  rec_.consistency = v.consistency;
  rec_.reason = v.reason;
  if (!cut) {
    delete_snapshots();
    ctx_.say(rec_.key() + ": " + rec_.reason);
  }
}

void VmBackup::finish(std::stop_token stop) {
  if (rec_.phase != VmPhase::kCompleted) return;
  auto st = ctx_.tracker.wait_ready(rec_.ns, snapshot_names(), MonoClock::now() + ctx_.spec.ready_timeout, stop);
  if (!st) {
    fail(sanitize_foreign(st.error().message));
    return;
  }
  for (auto& v : rec_.volumes) v.ready_at = WallClock::now();
  // Saving the resources is ordinary work: it waits while freeze windows have work (backup/freeze_gate.h).
  if (ctx_.gate) {
    if (auto q = ctx_.gate->quiet(stop); !q) {
      fail("interrupted before the VM's resources were saved");
      return;
    }
  }
  if (auto rs = collect_resources(*ctx_.client, ctx_.loc, ctx_.spec.name, plan_, rec_, ctx_.cached); !rs) {
    fail("saving resources: " + sanitize_foreign(rs.error().message));
  }
}

record::VmRecord VmBackup::snapshot_unfrozen(std::stop_token stop, const std::string& reason) {
  if (!reason.empty()) rec_.reason = reason;
  Status cut = create_snapshots();
  if (cut) cut = wait_cut(MonoClock::now() + ctx_.spec.ready_timeout, stop);
  judge(cut);
  if (cut) ctx_.say(rec_.key() + ": snapshots cut (" + std::string(to_string(rec_.consistency)) + ": " + rec_.reason + ")");
  finish(stop);
  return rec_;
}

void VmBackup::delete_snapshots() {
  for (auto& v : rec_.volumes) {
    if (v.volume_snapshot.empty() || v.deleted) continue;
    if (auto st = ctx_.tracker.remove(rec_.ns, v.volume_snapshot); !st) {
      rec_.problems.push_back("could not delete VolumeSnapshot " + rec_.ns + "/" + v.volume_snapshot + ": " +
                              sanitize_foreign(st.error().message));
    } else {
      v.deleted = true;
    }
  }
}

void VmBackup::fail(const std::string& reason) {
  rec_.phase = VmPhase::kFailed;
  rec_.reason = reason;
  rec_.consistency = Consistency::kNone;
}

}  // namespace kvb::backup
