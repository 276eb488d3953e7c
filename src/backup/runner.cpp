#include "backup/runner.h"

#include "backup/data_copy.h"
#include "backup/group_backup.h"
#include "backup/journal.h"
#include "backup/plan.h"
#include "backup/recover.h"
#include "backup/vm_backup.h"
#include "common/duration.h"
#include "common/parallel.h"
#include "common/random.h"
#include "common/sanitize.h"
#include "kube/object.h"
#include "kubevirt/resources.h"
#include "record/naming.h"
#include "rules/sources.h"
#include "version.h"

#include <boost/json.hpp>

#include <cstdlib>
#include <mutex>
#include <set>
#include <unistd.h>

namespace kvb::backup {
namespace json = boost::json;

namespace {

// Progress lines with the time since the start; thread-safe.
class Progress {
 public:
  explicit Progress(ProgressFn fn) : fn_(std::move(fn)) {}
  void operator()(const std::string& line) {
    if (!fn_) return;
    char buf[32];
    std::snprintf(buf, sizeof buf, "[%7.3fs] ", std::chrono::duration<double>(MonoClock::now() - t0_).count());
    std::lock_guard lock(mu_);
    fn_(buf + sanitize_foreign(line));
  }

 private:
  ProgressFn fn_;
  MonoClock::time_point t0_ = MonoClock::now();
  std::mutex mu_;
};

// Objects the backup already holds: snapshots from the watch, DataVolumes from
// one list per namespace, VolumeSnapshotContents read once each.
class ObjectCache {
 public:
  ObjectCache(kube::Client& client, SnapshotTracker& tracker) : client_(client), tracker_(tracker) {}
  void list_data_volumes(const std::vector<std::string>& namespaces) {
    for (const auto& ns : namespaces) {
      auto dvs = client_.list(kubevirt::kDataVolumes, ns);
      if (!dvs) return;  // read one by one then
      for (const auto& d : dvs->items) data_volumes_[ns + "/" + std::string(kube::name_of(d))] = d.as_object();
    }
  }
  std::optional<Result<json::object>> operator()(const kube::ResourceRef& ref, const std::string& ns, const std::string& name) {
    if (ref.resource == kube::resources::kVolumeSnapshots.resource) {
      if (auto s = tracker_.get(ns, name)) return Result<json::object>(std::move(*s));
      return std::nullopt;
    }
    if (ref.resource == kubevirt::kDataVolumes.resource) {
      auto it = data_volumes_.find(ns + "/" + name);
      if (it != data_volumes_.end()) return Result<json::object>(it->second);
      return std::nullopt;
    }
    if (ref.resource == kube::resources::kVolumeSnapshotContents.resource) {
      {
        std::lock_guard lock(mu_);
        if (auto it = contents_.find(name); it != contents_.end()) return it->second;
      }
      auto c = client_.get(kube::resources::kVolumeSnapshotContents, "", name);  // read once, even when it fails
      std::lock_guard lock(mu_);
      return contents_.emplace(name, std::move(c)).first->second;
    }
    return std::nullopt;
  }

 private:
  kube::Client& client_;
  SnapshotTracker& tracker_;
  std::map<std::string, json::object> data_volumes_;  // written before the workers start
  std::mutex mu_;
  std::map<std::string, Result<json::object>> contents_;
};

Result<Plan> prepare(kube::Client& client, const BackupSpec& spec) {
  KVB_TRY(auto vms, kubevirt::load_inventory(client, spec.inventory_scope()));
  if (vms.empty()) return Error(Errc::kInvalidArgument, "no VirtualMachines in scope");
  std::set<std::string> nss;
  for (const auto& v : vms) nss.insert(v.ns);
  std::vector<std::string> nsv(nss.begin(), nss.end());
  std::vector<rules::Rule> pre_rules, post_rules;
  if (spec.rules == RulesMode::kCustom) {
    if (spec.pre_rule.empty()) return Error(Errc::kInvalidArgument, "--rules custom needs --pre-rule (and --post-rule)");
    KVB_TRY(pre_rules, rules::load_rules(spec.pre_rule, rules::Phase::kPre, client, nsv));
    if (!spec.post_rule.empty()) {
      KVB_TRY(post_rules, rules::load_rules(spec.post_rule, rules::Phase::kPost, client, nsv));
    }
  }
  KVB_TRY(auto storage, load_storage(client, nsv));
  return make_plan(spec, std::move(vms), pre_rules, post_rules, storage);
}

record::JournalEntry journal_entry(const record::BackupRecord& rec, const Plan& plan) {
  record::JournalEntry e;
  e.backup = rec.name;
  e.uid = rec.uid;
  e.pid = static_cast<int>(::getpid());
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  e.host = host;
  e.started = rec.started;
  if (rec.options.copy_data) e.copy_namespaces = plan.namespaces;
  for (const auto& p : plan.vms) {
    if (!p.freezes()) continue;
    e.vms.push_back({p.vm.ns, p.vm.name,
                     p.freeze == FreezeKind::kSubresource ? record::FreezeMethod::kSubresource : record::FreezeMethod::kExec});
  }
  return e;
}

// How many freezes may be in flight at once while no freeze window has work
// waiting (backup/freeze_gate.h). KVB_BENCH_PRIORITY_LANE overrides it for
// bench/backup_bench alone, which runs with and without the lane side by side
// ("0": no gate, the behaviour before it); it is not a user setting.
int freeze_gate_width() {
  constexpr int kWidth = 4;
  const char* knob = std::getenv("KVB_BENCH_PRIORITY_LANE");
  if (!knob || !*knob) return kWidth;
  char* end = nullptr;
  long v = std::strtol(knob, &end, 10);
  return end && *end == '\0' && v >= 0 && v <= 1000 ? static_cast<int>(v) : kWidth;
}

record::BackupPhase tally(const std::vector<record::VmRecord>& vms, bool interrupted) {
  size_t failed = 0, done = 0;
  for (const auto& v : vms) {
    failed += v.phase == record::VmPhase::kFailed;
    failed += v.phase == record::VmPhase::kPartiallyFailed;
    done += v.phase == record::VmPhase::kCompleted || v.phase == record::VmPhase::kPartiallyFailed;
  }
  if (failed == 0 && !interrupted) return record::BackupPhase::kCompleted;
  return done > 0 ? record::BackupPhase::kPartiallyFailed : record::BackupPhase::kFailed;
}

}  // namespace

BackupRunner::BackupRunner(std::shared_ptr<kube::Client> client, location::Location& location, BackupSpec spec, ProgressFn progress,
                           repo::Repository* data_repository)
    : client_(std::move(client)), location_(location), spec_(std::move(spec)), progress_(std::move(progress)),
      data_repository_(data_repository) {}

Result<record::BackupRecord> BackupRunner::run(std::stop_token stop) {
  KVB_CHECK(record::validate_backup_name(spec_.name));
  if (spec_.copy_data && !data_repository_) return Error(Errc::kInvalidArgument, "--copy-data needs a repository");
  if (location_.exists(record::backup_record_path(spec_.name))) {
    return Error(Errc::kInvalidArgument, "backup \"" + spec_.name + "\" already exists in " + location_.describe());
  }
  Progress say(progress_);
  // Guests that a dead backup left frozen come first.
  auto recovered = recover(client_, location_, spec_);
  for (const auto& l : recovered.lines) say("recover: " + l);
  for (const auto& pr : recovered.problems) say("recover: " + pr);
  KVB_TRY(auto plan, prepare(*client_, spec_));
  // The repository series' cluster name, before anything is frozen: a copy that cannot be named costs no freeze.
  std::string data_cluster;
  if (spec_.copy_data) {
    KVB_TRY(data_cluster, cluster_id(*client_));
  }

  record::BackupRecord rec;
  rec.name = spec_.name;
  rec.uid = random_uuid();
  rec.kvbackup_version = kKvbackupVersion;
  rec.cluster = redact_url(client_->config().cluster.server);
  rec.options = spec_;
  rec.started = WallClock::now();
  rec.warnings = plan.warnings;
  for (const auto& l : recovered.lines) rec.warnings.push_back("recover: " + l);
  // The run lock, then the journal entry, before anything is frozen: from now
  // on a dead process is found by recover. Under the lock the record is
  // looked for again: another run of this name may have written it meanwhile.
  KVB_TRY(auto run_lock, lock_journal(location_, spec_.name, location::kRunLockContention));
  if (location_.exists(record::backup_record_path(spec_.name))) {
    return Error(Errc::kInvalidArgument, "backup \"" + spec_.name + "\" already exists in " + location_.describe());
  }
  auto journal = Journal::begin(location_, std::move(run_lock), journal_entry(rec, plan));
  if (!journal) return journal.error();
  if (auto st = location_.put(record::backup_record_path(spec_.name), json::serialize(rec.to_json())); !st) {
    (void)(*journal)->finish();  // nothing was frozen
    return st.error();
  }

  auto finish_record = [&](record::BackupPhase phase, const std::string& error) -> Result<record::BackupRecord> {
    rec.phase = phase;
    rec.error = sanitize_foreign(error);
    rec.finished = WallClock::now();
    KVB_CHECK(location_.sync());  // the resources the record names are durable before it is
    if (auto held = (*journal)->still_held(); !held) {
      rec.warnings.push_back("the run lock was lost while the backup ran (" + held.error().message +
                             "): another kvbackup may have run recover on this backup");
    }
    KVB_CHECK(location_.put(record::backup_record_path(spec_.name), json::serialize(rec.to_json())));
    bool thaws_ok = true;
    for (const auto& v : rec.vms) thaws_ok = thaws_ok && v.freeze.thaw_ok;
    if (thaws_ok) (void)(*journal)->finish();
    return rec;
  };

  auto tracker = SnapshotTracker::start(client_, spec_.name, rec.uid, plan.namespaces, spec_.scope.all_namespaces);
  if (!tracker) return finish_record(record::BackupPhase::kFailed, tracker.error().message);
  ObjectCache cache(*client_, **tracker);
  cache.list_data_volumes(plan.namespaces);
  auto pod_exec = rules::cluster_pod_exec(client_);
  Freezer freezer(pod_exec, kubevirt::cluster_freeze_api(client_), spec_);
  // A lease lasts as long as a freeze can be held: the freeze, the cut, every thaw round, a late freeze.
  auto lease_for = std::chrono::duration_cast<std::chrono::seconds>(2 * spec_.freeze_deadline + spec_.thaw_retry_budget +
                                                                     spec_.late_freeze_bound) + std::chrono::seconds(30);
  FreezeLeases leases(client_, lease_holder(spec_.name, rec.uid), lease_for);
  FreezeGate gate(freeze_gate_width());
  BackupContext ctx{client_, location_, spec_, rec.uid, **tracker, freezer, leases,
                    [&cache](const kube::ResourceRef& r, const std::string& ns, const std::string& n) { return cache(r, ns, n); },
                    [&say](const std::string& line) { say(line); },
                    [j = journal->get()] { return j->still_held(); },
                    &gate};
  size_t freezing = 0;
  for (const auto& p : plan.vms) freezing += p.freezes();
  say("backup " + spec_.name + ": " + std::to_string(plan.vms.size()) + " VMs, " + std::to_string(freezing) +
      " to freeze, concurrency " + std::to_string(spec_.concurrency) + ", freeze deadline " + format_duration(spec_.freeze_deadline));

  // Application items of custom rules: once before the first freeze.
  rules::Executor app_exec(pod_exec, rules::ExecutorOptions{});
  auto lister = rules::cluster_pod_lister(client_);
  std::vector<std::shared_ptr<rules::BackgroundActions>> app_background;
  auto release_app = [&] {
    for (auto& b : app_background) b->release(std::chrono::seconds(30));
    app_background.clear();
  };
  for (const auto& r : plan.app_pre) {
    auto run = app_exec.run(r, plan.namespaces, lister, stop);
    for (const auto& w : run.warnings) rec.warnings.push_back(sanitize_foreign(w));
    if (run.background) app_background.push_back(run.background);
    if (!run.ok()) {
      release_app();
      return finish_record(record::BackupPhase::kFailed, "pre-exec rule " + r.name + " failed: " + run.status.error().message);
    }
  }
  if (spec_.consistency_group == ConsistencyGroup::kAll) {
    rec.vms = backup_group(ctx, plan, stop);
  } else {
    rec.vms.resize(plan.vms.size());
    parallel_for(plan.vms.size(), spec_.concurrency, [&](size_t i) { rec.vms[i] = VmBackup(ctx, plan.vms[i]).run(stop); });
  }
  release_app();
  for (const auto& r : plan.app_post) {
    auto run = app_exec.run(r, plan.namespaces, lister, {});
    for (const auto& w : run.warnings) rec.warnings.push_back(sanitize_foreign(w));
    if (!run.ok()) rec.warnings.push_back("post-exec rule " + r.name + " failed: " + sanitize_foreign(run.status.error().message));
  }
  if (spec_.copy_data && !stop.stop_requested()) {
    // Every VM is thawed (or its thaw is being retried by recover): copying never holds a freeze.
    DataCopyContext dc{client_, *data_repository_, data_cluster, spec_.name, rec.uid, spec_.ready_timeout, 4,
                       spec_.data_retry_budget, [&say](const std::string& line) { say(line); }, transfer_};
    copy_backup_data(dc, rec.vms, spec_.data_concurrency, stop);
    for (const auto& ns : plan.namespaces) {
      auto left = remove_copy_leftovers(*client_, ns, rec.uid);  // none, unless a delete failed above
      if (!left) rec.warnings.push_back("temporary copy objects in " + ns + " may be left: " + sanitize_foreign(left.error().message));
    }
  }
  bool interrupted = stop.stop_requested();
  return finish_record(tally(rec.vms, interrupted), interrupted ? "interrupted: every frozen VM was thawed before stopping" : "");
}

}  // namespace kvb::backup
