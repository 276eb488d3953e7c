#include "backup/group_backup.h"

#include "backup/vm_backup.h"
#include "common/parallel.h"

#include <memory>

namespace kvb::backup {

std::vector<record::VmRecord> backup_group(BackupContext& ctx, const Plan& plan, std::stop_token stop) {
  size_t n = plan.vms.size();
  int workers = ctx.spec.concurrency;
  std::vector<std::unique_ptr<VmBackup>> vms;
  for (const auto& p : plan.vms) vms.push_back(std::make_unique<VmBackup>(ctx, p));
  std::vector<char> started(n, 0), frozen(n, 0), froze_attempted(n, 0);

  parallel_for(n, workers, [&](size_t i) {
    auto& vm = *vms[i];
    if (!vm.ready_to_start(stop)) return;
    started[i] = 1;
    if (!plan.vms[i].freezes()) return;
    froze_attempted[i] = 1;
    frozen[i] = vm.take_lease(stop) && vm.freeze(stop);
  });
  bool all_frozen = !stop.stop_requested();
  MonoClock::time_point first_frozen = MonoClock::time_point::max();
  for (size_t i = 0; i < n; ++i) {
    if (froze_attempted[i] && !frozen[i]) all_frozen = false;
    if (frozen[i]) first_frozen = std::min(first_frozen, vms[i]->freeze_outcome().confirmed);
  }
  // A run lock lost while the group froze: another kvbackup may be recovering
  // this run, so nothing is cut under it; every guest is thawed below.
  Status lock = ctx.run_lock_held ? ctx.run_lock_held() : ok();
  ctx.say(std::string("group: ") + (!lock ? "the run lock was lost" : all_frozen ? "every VM frozen" : "not every VM could be frozen"));

  Status cut = !lock ? Status(Error(Errc::kConflict, "the backup's run lock was lost while the group froze (" + lock.error().message +
                                                         "): nothing was cut, every guest thawed"))
               : all_frozen ? ok()
                            : Status(Error(Errc::kInternal, "not every VM of the consistency group could be frozen"));
  if (cut) {
    std::vector<Status> created(n);
    parallel_for(n, workers, [&](size_t i) {
      if (started[i]) created[i] = vms[i]->create_snapshots();
    });
    auto deadline = first_frozen == MonoClock::time_point::max() ? MonoClock::now() + ctx.spec.ready_timeout
                                                                 : first_frozen + ctx.spec.freeze_deadline;
    for (size_t i = 0; i < n && cut; ++i) {
      if (!started[i]) continue;
      cut = created[i] ? vms[i]->wait_cut(deadline, stop) : created[i];
    }
  }
  if (cut) {
    parallel_for(n, workers, [&](size_t i) {
      if (frozen[i]) vms[i]->check_held();
    });
  }
  parallel_for(n, workers, [&](size_t i) {
    if (frozen[i]) vms[i]->thaw();
  });
  ctx.say("group: every VM thawed");

  std::vector<CutSeen> group_cuts;
  for (size_t i = 0; i < n && cut; ++i) {
    if (!started[i]) continue;
    auto c = vms[i]->cuts();
    group_cuts.insert(group_cuts.end(), c.begin(), c.end());
  }
  Status verdict_cut = cut ? ok() : Status(Error(cut.error().code, "consistency group: " + cut.error().message));
  parallel_for(n, workers, [&](size_t i) {
    // A VM that already failed (its lease, say) keeps its own reason.
    if (!started[i] || vms[i]->record().phase == record::VmPhase::kFailed) return;
    vms[i]->judge(verdict_cut, frozen[i] ? group_cuts : std::vector<CutSeen>{});
    vms[i]->finish(stop);
  });
  std::vector<record::VmRecord> out;
  for (auto& vm : vms) out.push_back(vm->record());
  return out;
}

}  // namespace kvb::backup
