#include "backup/verdict.h"

namespace kvb::backup {

using record::Consistency;
using record::VmPhase;

namespace {

std::string clock(const std::optional<WallTime>& t) {
  return t ? format_rfc3339(*t, TimePrecision::kMillis) : std::string("(unknown)");
}

Verdict crash(std::string reason) { return {VmPhase::kCompleted, Consistency::kCrashConsistent, std::move(reason)}; }

}  // namespace

Verdict judge(const VerdictInput& in) {
  if (!in.cut) {
    return {VmPhase::kFailed, Consistency::kNone,
            in.cut.error().message + (in.froze ? "; the guest was thawed first" : std::string())};
  }
  for (const auto& c : in.cuts) {
    if (c.created_uid.empty() || c.seen_uid != c.created_uid) {
      return {VmPhase::kFailed, Consistency::kNone,
              "VolumeSnapshot " + c.snapshot + " is not the object this backup created (uid " +
                  (c.seen_uid.empty() ? std::string("unknown") : c.seen_uid) + "); it cannot count"};
    }
  }
  if (!in.froze) {
    Consistency c = in.promised == Consistency::kFileSystemConsistent ? Consistency::kCrashConsistent : in.promised;
    return {VmPhase::kCompleted, c, in.freeze_reason.empty() ? in.promise_reason : in.freeze_reason};
  }
  if (!in.thaw_ok) {
    return {VmPhase::kFailed, Consistency::kNone,
            "the thaw was not confirmed (" + in.thaw_reason + "): the guest may still be frozen; run kvbackup recover"};
  }
  if (in.guest_thawed_itself) return crash(in.thaw_reason + ": the cut may have happened after it");
  if (in.held != kubevirt::FreezeState::kFrozen) {
    if (in.held == kubevirt::FreezeState::kError) {
      return crash("the guest could not be checked still frozen before the thaw (" + in.held_detail + ")");
    }
    return crash("the guest was no longer frozen when checked before the thaw (" + in.held_detail +
                 "): its freeze did not hold until the cut");
  }
  std::optional<WallTime> last_cut;
  for (const auto& c : in.cuts) {
    if (!c.cut_at) return crash("VolumeSnapshot " + c.snapshot + " has no cut time");
    if (!in.frozen_at || !in.held_at || *c.cut_at < *in.frozen_at - in.clock_skew || *c.cut_at > *in.held_at + in.clock_skew) {
      return crash("VolumeSnapshot " + c.snapshot + " was cut at " + clock(c.cut_at) + ", outside the freeze (frozen " +
                   clock(in.frozen_at) + ", still frozen " + clock(in.held_at) + ")");
    }
    if (!last_cut || *c.cut_at > *last_cut) last_cut = c.cut_at;
  }
  if (in.auto_thaw && in.freeze_requested_at && last_cut && *last_cut - *in.freeze_requested_at >= *in.auto_thaw) {
    return crash("the guest's auto-thaw (" + std::to_string(in.auto_thaw->count()) + " s after the freeze) may have come before the cut at " +
                 clock(last_cut));
  }
  std::string why = in.group ? "frozen with the whole group (" + in.freeze_reason +
                                   "); every snapshot of the group was cut inside the freeze and the guest was still frozen before the thaw"
                             : "frozen (" + in.freeze_reason +
                                   "); every snapshot was cut inside the freeze and the guest was still frozen before the thaw";
  return {VmPhase::kCompleted, Consistency::kFileSystemConsistent, why};
}

}  // namespace kvb::backup
