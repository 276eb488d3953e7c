#include "backup/runner.h"

#include "backup/freezer.h"
#include "backup/journal.h"
#include "backup/plan.h"
#include "backup/resources.h"
#include "backup/snapshots.h"
#include "common/duration.h"
#include "kube/object.h"
#include "kubevirt/resources.h"
#include "rules/executor.h"
#include "rules/sources.h"
#include "version.h"

#include <boost/json.hpp>

#include <atomic>
#include <set>
#include <mutex>
#include <thread>
#include <unistd.h>

namespace kvb::backup {
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

void parallel_for(size_t n, int workers, const std::function<void(size_t)>& fn) {
  std::atomic<size_t> next{0};
  size_t threads = std::min<size_t>(n, static_cast<size_t>(std::max(1, workers)));
  std::vector<std::thread> pool;
  for (size_t t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (size_t i = next++; i < n; i = next++) fn(i);
    });
  }
  for (auto& th : pool) th.join();
}

struct Runner::Impl {
  Impl(std::shared_ptr<kube::Client> c, location::Location& l, const BackupSpec& s, ProgressFn p)
      : client(std::move(c)), loc(l), spec(s), progress(std::move(p)) {}
  Impl(const Impl&) = delete;  // `cached` captures this

  std::shared_ptr<kube::Client> client;
  location::Location& loc;
  const BackupSpec& spec;
  ProgressFn progress;
  Clock::time_point t0 = Clock::now();
  std::mutex mu;
  std::unique_ptr<SnapshotTracker> tracker;
  std::unique_ptr<Freezer> freezer;
  std::map<std::string, json::object> data_volumes;  // "ns/name", listed once
  ObjectLookup cached = [this](const kube::ResourceRef& ref, const std::string& ns,
                               const std::string& name) -> std::optional<json::object> {
    if (ref.resource == kube::resources::kVolumeSnapshots.resource) return tracker->get(ns, name);
    if (ref.resource == kubevirt::kDataVolumes.resource) {
      auto it = data_volumes.find(ns + "/" + name);
      if (it != data_volumes.end()) return it->second;
    }
    return std::nullopt;
  };

  void say(const std::string& line) {
    if (!progress) return;
    char buf[32];
    std::snprintf(buf, sizeof buf, "[%7.3fs] ", std::chrono::duration<double>(Clock::now() - t0).count());
    std::lock_guard lock(mu);
    progress(buf + line);
  }

  static double ms(WallTime a, WallTime b) { return std::chrono::duration<double, std::milli>(b - a).count(); }

  VmRecord init_record(const VmPlan& p) {
    VmRecord r;
    r.ns = p.vm.ns;
    r.name = p.vm.name;
    r.promised = p.promised;
    r.consistency = p.promised;
    r.reason = p.reason;
    r.phase = p.planned;
    r.freeze.method = p.method.empty() ? "none" : p.method;
    r.problems = p.notes;
    for (const auto& v : p.volumes) {
      VolumeRecord vr;
      vr.name = v.volume.name;
      vr.pvc = v.volume.claim;
      vr.storage_class = v.storage_class;
      vr.snapshot_class = v.snapshot_class;
      vr.size = v.size;
      r.volumes.push_back(vr);
    }
    return r;
  }

  // Creates the VM's snapshots; false when one could not be created.
  bool create_snapshots(const VmPlan& p, VmRecord& r) {
    for (size_t i = 0; i < p.volumes.size(); ++i) {
      auto st = tracker->create(spec.name, p, p.volumes[i]);
      if (!st) {
        r.volumes[i].error = st.error().message;
        r.reason = st.error().message;
        return false;
      }
      r.volumes[i].volume_snapshot = p.volumes[i].snapshot_name;
    }
    return true;
  }

  std::vector<std::string> snapshot_names(const VmPlan& p) {
    std::vector<std::string> out;
    for (const auto& v : p.volumes) out.push_back(v.snapshot_name);
    return out;
  }

  void note_cuts(const VmPlan& p, VmRecord& r) {
    for (auto& v : r.volumes) {
      if (v.volume_snapshot.empty()) continue;
      if (auto s = tracker->get(p.vm.ns, v.volume_snapshot)) {
        if (auto t = parse_rfc3339(kube::str_at(*s, {"status", "creationTime"}))) v.cut_at = *t;
        if (auto e = kube::str_at(*s, {"status", "error", "message"}); !e.empty()) v.error = std::string(e);
      }
    }
  }

  void delete_snapshots(const VmPlan& p, VmRecord& r) {
    for (auto& v : r.volumes) {
      if (v.volume_snapshot.empty()) continue;
      if (auto st = tracker->remove(p.vm.ns, v.volume_snapshot); !st) {
        r.problems.push_back("could not delete VolumeSnapshot " + p.vm.ns + "/" + v.volume_snapshot + ": " + st.error().message);
      } else {
        v.volume_snapshot += " (deleted)";
      }
    }
  }

  void fail(VmRecord& r, const std::string& reason) {
    r.phase = VmPhase::kFailed;
    r.reason = reason;
    r.consistency = Consistency::kNone;
  }

  void apply_thaw(VmRecord& r, const ThawOutcome& t) {
    r.freeze.thaw_requested_at = t.requested_at;
    r.freeze.thawed_at = t.thawed_at;
    r.executions.insert(r.executions.end(), t.executions.begin(), t.executions.end());
  }

  // Finishes a VM after its cut: readyToUse, resources, the record's verdict.
  void finish(const VmPlan& p, VmRecord& r, std::stop_token stop) {
    auto st = tracker->wait_ready(p.vm.ns, snapshot_names(p), Clock::now() + spec.ready_timeout, stop);
    note_cuts(p, r);
    if (!st) {
      fail(r, st.error().message);
      return;
    }
    for (auto& v : r.volumes) v.ready_at = WallClock::now();
    if (auto rs = collect_resources(*client, loc, spec.name, p, r, cached); !rs) {
      fail(r, "saving resources: " + rs.error().message);
      return;
    }
    if (r.phase != VmPhase::kFailed) r.phase = VmPhase::kCompleted;
  }

  // The whole life of one VM in a per-VM backup.
  VmRecord backup_vm(const VmPlan& p, std::stop_token stop) {
    VmRecord r = init_record(p);
    if (p.planned != VmPhase::kCompleted) {
      say(p.vm.key() + ": " + std::string(to_string(p.planned)) + ": " + p.reason);
      return r;
    }
    if (stop.stop_requested()) {
      fail(r, "interrupted before the VM was started");
      return r;
    }
    if (!p.freeze) return snapshot_unfrozen(p, r, stop);
    FreezeOutcome f = freezer->freeze(p, stop);
    r.freeze.requested_at = f.requested_at;
    r.freeze.frozen_at = f.frozen_at;
    r.freeze.evidence = std::string(rules::freeze_evidence_name(f.evidence)) + (f.reason.empty() ? "" : ": " + f.reason);
    r.executions = f.executions;
    if (!f.frozen()) {
      ThawOutcome t = freezer->thaw(p, f);  // the post rule runs whenever the pre rule started
      apply_thaw(r, t);
      if (!t.ok) r.problems.push_back("thaw failed: " + t.reason);
      if (f.evidence == rules::FreezeEvidence::kNotFrozen && spec.on_no_agent == OnNoAgent::kCrashConsistent) {
        say(p.vm.key() + ": not frozen (" + f.reason + "); taking crash-consistent snapshots");
        r.reason = f.reason;
        return snapshot_unfrozen(p, r, stop, Consistency::kCrashConsistent);
      }
      if (f.evidence == rules::FreezeEvidence::kNotFrozen && spec.on_no_agent == OnNoAgent::kSkip) {
        r.phase = VmPhase::kSkipped;
        r.consistency = Consistency::kNone;
        r.reason = f.reason + " (--on-no-agent skip)";
        return r;
      }
      fail(r, "freeze failed: " + f.reason);
      say(p.vm.key() + ": " + r.reason);
      return r;
    }
    say(p.vm.key() + ": frozen (" + p.method + ", " + std::to_string(static_cast<int>(ms(*f.requested_at, *f.frozen_at))) + " ms)");
    bool created = create_snapshots(p, r);
    Status cut = created ? tracker->wait_cut(p.vm.ns, snapshot_names(p), Clock::now() + spec.freeze_deadline -
                                                                              std::chrono::duration_cast<Clock::duration>(WallClock::now() - *f.frozen_at),
                                             stop)
                         : Status(Error(Errc::kInternal, r.reason));
    ThawOutcome t = freezer->thaw(p, f);  // at once: the cut is done, or it failed
    apply_thaw(r, t);
    double window = r.freeze.window_ms();
    say(p.vm.key() + ": thawed (freeze window " + std::to_string(static_cast<int>(window)) + " ms)");
    if (!t.ok) {
      r.problems.push_back("THAW FAILED (" + t.reason + "): the guest may stay frozen until its auto-thaw; run kvbackup recover");
    }
    if (!cut) {
      note_cuts(p, r);
      std::string why = cut.error().code == Errc::kTimeout
                            ? "the snapshots were not cut within --freeze-deadline " + format_duration(spec.freeze_deadline) +
                                  " (" + cut.error().message + "); the guest was thawed first"
                        : cut.error().code == Errc::kCancelled ? "interrupted while waiting for the cut; the guest was thawed first"
                                                                : cut.error().message + "; the guest was thawed first";
      fail(r, why);
      delete_snapshots(p, r);
      return r;
    }
    note_cuts(p, r);
    if (t.guest_thawed_itself) {
      r.consistency = Consistency::kCrashConsistent;
      r.reason = t.reason + ": the cut may have happened after it";
    } else if (!t.ok) {
      fail(r, "thaw failed: " + t.reason);
    } else {
      r.consistency = Consistency::kFileSystemConsistent;
      r.reason = "frozen (" + f.reason + "); every snapshot was cut before the thaw";
    }
    finish(p, r, stop);
    return r;
  }

  VmRecord snapshot_unfrozen(const VmPlan& p, VmRecord& r, std::stop_token stop,
                             std::optional<Consistency> consistency = std::nullopt) {
    if (consistency) r.consistency = *consistency;
    if (!create_snapshots(p, r)) {
      fail(r, r.reason);
      return r;
    }
    auto st = tracker->wait_cut(p.vm.ns, snapshot_names(p), Clock::now() + spec.ready_timeout, stop);
    if (!st) {
      note_cuts(p, r);
      fail(r, st.error().message);
      delete_snapshots(p, r);
      return r;
    }
    say(p.vm.key() + ": snapshots cut (" + std::string(to_string(r.consistency)) + ": " + r.reason + ")");
    finish(p, r, stop);
    return r;
  }

  // --consistency-group all: freeze every VM, cut every snapshot, thaw every VM.
  std::vector<VmRecord> backup_group(const Plan& plan, std::stop_token stop) {
    size_t n = plan.vms.size();
    std::vector<VmRecord> recs(n);
    std::vector<FreezeOutcome> freezes(n);
    std::vector<bool> in_group(n, false), created(n, false);
    for (size_t i = 0; i < n; ++i) recs[i] = init_record(plan.vms[i]);
    parallel_for(n, spec.concurrency, [&](size_t i) {
      const auto& p = plan.vms[i];
      if (p.planned != VmPhase::kCompleted || !p.freeze || stop.stop_requested()) return;
      freezes[i] = freezer->freeze(p, stop);
      recs[i].freeze.requested_at = freezes[i].requested_at;
      recs[i].freeze.frozen_at = freezes[i].frozen_at;
      recs[i].freeze.evidence = std::string(rules::freeze_evidence_name(freezes[i].evidence)) + ": " + freezes[i].reason;
      recs[i].executions = freezes[i].executions;
      in_group[i] = true;
    });
    bool all_frozen = true;
    std::optional<WallTime> first_frozen;
    for (size_t i = 0; i < n; ++i) {
      if (!in_group[i]) continue;
      if (!freezes[i].frozen()) all_frozen = false;
      if (freezes[i].frozen_at && (!first_frozen || *freezes[i].frozen_at < *first_frozen)) first_frozen = freezes[i].frozen_at;
    }
    say(std::string("group: ") + (all_frozen ? "every VM frozen" : "not every VM could be frozen"));
    Status cut = ok();
    if (all_frozen && !stop.stop_requested()) {
      parallel_for(n, spec.concurrency, [&](size_t i) {
        if (plan.vms[i].planned == VmPhase::kCompleted) created[i] = create_snapshots(plan.vms[i], recs[i]);
      });
      auto deadline = Clock::now() + spec.freeze_deadline -
                      (first_frozen ? std::chrono::duration_cast<Clock::duration>(WallClock::now() - *first_frozen) : Clock::duration{});
      for (size_t i = 0; i < n && cut; ++i) {
        if (!created[i] && plan.vms[i].planned == VmPhase::kCompleted) cut = Error(Errc::kInternal, recs[i].reason);
        if (created[i]) cut = tracker->wait_cut(plan.vms[i].vm.ns, snapshot_names(plan.vms[i]), deadline, stop);
      }
    } else {
      cut = Error(Errc::kInternal, "not every VM of the consistency group could be frozen");
    }
    parallel_for(n, spec.concurrency, [&](size_t i) {
      if (!in_group[i]) return;
      apply_thaw(recs[i], freezer->thaw(plan.vms[i], freezes[i]));
    });
    say("group: every VM thawed");
    parallel_for(n, spec.concurrency, [&](size_t i) {
      const auto& p = plan.vms[i];
      auto& r = recs[i];
      if (p.planned != VmPhase::kCompleted) return;
      if (!cut) {
        note_cuts(p, r);
        fail(r, "consistency group: " + cut.error().message + "; every VM was thawed first");
        if (created[i]) delete_snapshots(p, r);
        return;
      }
      note_cuts(p, r);
      if (in_group[i]) {
        r.consistency = Consistency::kFileSystemConsistent;
        r.reason = "frozen with the whole group; every snapshot of the group was cut before any thaw";
      }
      finish(p, r, stop);
    });
    return recs;
  }
};

Runner::Runner(std::shared_ptr<kube::Client> client, location::Location& location, BackupSpec spec, ProgressFn progress)
    : client_(std::move(client)), location_(location), spec_(std::move(spec)), progress_(std::move(progress)) {}

namespace {

BackupOptionsRecord options_record(const BackupSpec& s) {
  BackupOptionsRecord o;
  o.namespaces = s.scope.namespaces;
  o.all_namespaces = s.scope.all_namespaces;
  o.vms = s.scope.vm_names;
  o.selector = s.scope.label_selector;
  o.rules = s.rules == RulesMode::kBuiltin ? "builtin" : "custom";
  o.pre_rule = s.pre_rule;
  o.post_rule = s.post_rule;
  o.freeze_method = s.freeze_method == FreezeMethod::kExec ? "exec" : "subresource";
  o.on_no_agent = s.on_no_agent == OnNoAgent::kCrashConsistent ? "crash-consistent" : s.on_no_agent == OnNoAgent::kSkip ? "skip" : "fail";
  o.concurrency = s.concurrency;
  o.freeze_deadline = format_duration(s.freeze_deadline);
  o.consistency_group = s.consistency_group == ConsistencyGroup::kAll ? "all" : "none";
  return o;
}


}  // namespace

Result<BackupRecord> Runner::run(std::stop_token stop) {
  KVB_CHECK(validate_backup_name(spec_.name));
  if (location_.exists(backup_record_path(spec_.name))) {
    return Error(Errc::kInvalidArgument, "backup \"" + spec_.name + "\" already exists in " + location_.describe());
  }
  Impl impl(client_, location_, spec_, progress_);
  // Guests that a dead backup left frozen come first.
  auto recovered = recover(client_, location_);
  for (const auto& l : recovered.lines) impl.say("recover: " + l);
  for (const auto& pr : recovered.problems) impl.say("recover: " + pr);

  std::vector<rules::Rule> pre_rules, post_rules;
  KVB_TRY(auto vms, kubevirt::load_inventory(*client_, spec_.scope));
  if (vms.empty()) return Error(Errc::kInvalidArgument, "no VirtualMachines in scope");
  if (spec_.rules == RulesMode::kCustom) {
    std::set<std::string> nss;
    for (const auto& v : vms) nss.insert(v.ns);
    std::vector<std::string> nsv(nss.begin(), nss.end());
    if (spec_.pre_rule.empty()) return Error(Errc::kInvalidArgument, "--rules custom needs --pre-rule (and --post-rule)");
    KVB_TRY(pre_rules, rules::load_rules(spec_.pre_rule, rules::Phase::kPre, *client_, nsv));
    if (!spec_.post_rule.empty()) {
      KVB_TRY(post_rules, rules::load_rules(spec_.post_rule, rules::Phase::kPost, *client_, nsv));
    }
  }
  KVB_TRY(auto plan, make_plan(*client_, spec_, std::move(vms), pre_rules, post_rules));

  BackupRecord rec;
  rec.name = spec_.name;
  rec.kvbackup_version = kKvbackupVersion;
  rec.cluster = client_->config().cluster.server;
  rec.options = options_record(spec_);
  rec.started = WallClock::now();
  rec.warnings = plan.warnings;
  for (const auto& l : recovered.lines) rec.warnings.push_back("recover: " + l);
  KVB_CHECK(location_.put(backup_record_path(spec_.name), json::serialize(rec.to_json())));

  auto finish_record = [&](BackupPhase phase, const std::string& error) -> Result<BackupRecord> {
    rec.phase = phase;
    rec.error = error;
    rec.finished = WallClock::now();
    KVB_CHECK(location_.sync());  // the resources the record names are durable before it is
    KVB_CHECK(location_.put(backup_record_path(spec_.name), json::serialize(rec.to_json())));
    return rec;
  };

  auto tracker = SnapshotTracker::start(client_, spec_.name, plan.namespaces, spec_.scope.all_namespaces);
  if (!tracker) return finish_record(BackupPhase::kFailed, tracker.error().message);
  impl.tracker = std::move(*tracker);
  // DataVolumes are saved for restore: one list per namespace, not one GET per volume.
  for (const auto& ns : plan.namespaces) {
    auto dvs = client_->list(kubevirt::kDataVolumes, ns);
    if (!dvs) break;  // saved one by one then
    for (const auto& d : dvs->items) impl.data_volumes[ns + "/" + std::string(kube::name_of(d))] = d.as_object();
  }
  impl.freezer = std::make_unique<Freezer>(client_, spec_);

  // The journal names every VM this backup may freeze, before the first freeze.
  JournalEntry entry;
  entry.backup = spec_.name;
  entry.pid = static_cast<int>(::getpid());
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  entry.host = host;
  entry.started = rec.started;
  for (const auto& p : plan.vms) {
    if (!p.freeze) continue;
    JournalVm jv{p.vm.ns, p.vm.name, p.method == "subresource" ? "subresource" : "exec", p.vm.pod_name(),
                 kubevirt::kComputeContainer, {kubevirt::kVirtFreezer, "--unfreeze", "--name", p.vm.name, "--namespace", p.vm.ns}};
    if (!p.post.empty() && !p.post[0].actions.empty()) {
      jv.container = p.post[0].container.empty() ? kubevirt::kComputeContainer : p.post[0].container;
      jv.thaw_command = p.post[0].actions[0].command();
    }
    entry.vms.push_back(jv);
  }
  std::unique_ptr<Journal> journal;
  if (!entry.vms.empty() || !plan.app_pre.empty()) {
    auto j = Journal::begin(location_, entry);
    if (!j) return finish_record(BackupPhase::kFailed, j.error().message);
    journal = std::move(*j);
  }
  size_t freezing = entry.vms.size();
  impl.say("backup " + spec_.name + ": " + std::to_string(plan.vms.size()) + " VMs, " + std::to_string(freezing) +
           " to freeze, concurrency " + std::to_string(spec_.concurrency) + ", freeze deadline " + format_duration(spec_.freeze_deadline));

  // Application items of custom rules: once before the first freeze.
  rules::Executor app_exec(client_, rules::ExecutorOptions{});
  auto lister = rules::cluster_pod_lister(client_);
  std::vector<std::shared_ptr<rules::BackgroundActions>> app_background;
  for (const auto& r : plan.app_pre) {
    auto run = app_exec.run(r, plan.namespaces, lister, stop);
    for (const auto& w : run.warnings) rec.warnings.push_back(w);
    if (run.background) app_background.push_back(run.background);
    if (!run.ok()) {
      for (auto& b : app_background) b->release(std::chrono::seconds(30));
      if (journal) (void)journal->finish();
      return finish_record(BackupPhase::kFailed, "pre-exec rule " + r.name + " failed: " + run.status.error().message);
    }
  }

  if (spec_.consistency_group == ConsistencyGroup::kAll) {
    rec.vms = impl.backup_group(plan, stop);
  } else {
    rec.vms.resize(plan.vms.size());
    parallel_for(plan.vms.size(), spec_.concurrency, [&](size_t i) { rec.vms[i] = impl.backup_vm(plan.vms[i], stop); });
  }

  for (auto& b : app_background) b->release(std::chrono::seconds(30));
  for (const auto& r : plan.app_post) {
    auto run = app_exec.run(r, plan.namespaces, lister, {});
    for (const auto& w : run.warnings) rec.warnings.push_back(w);
    if (!run.ok()) rec.warnings.push_back("post-exec rule " + r.name + " failed: " + run.status.error().message);
  }
  bool thaw_failed = false;
  for (const auto& v : rec.vms) {
    for (const auto& pr : v.problems) thaw_failed = thaw_failed || pr.rfind("THAW FAILED", 0) == 0;
  }
  if (journal && !thaw_failed) (void)journal->finish();

  size_t failed = 0, done = 0;
  for (const auto& v : rec.vms) {
    if (v.phase == VmPhase::kFailed) ++failed;
    if (v.phase == VmPhase::kCompleted) ++done;
  }
  BackupPhase phase = failed == 0 ? BackupPhase::kCompleted : (done > 0 ? BackupPhase::kPartiallyFailed : BackupPhase::kFailed);
  std::string error;
  if (stop.stop_requested()) {
    phase = done > 0 ? BackupPhase::kPartiallyFailed : BackupPhase::kFailed;
    error = "interrupted: every frozen VM was thawed before stopping";
  }
  return finish_record(phase, error);
}

}  // namespace kvb::backup
