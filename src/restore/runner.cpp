#include "restore/runner.h"

#include "common/sanitize.h"
#include "kube/object.h"
#include "kube/resource.h"
#include "repo/repository.h"
#include "restore/plan.h"
#include "restore/upload.h"
#include "restore/vm_restore.h"
#include "version.h"

#include <boost/json.hpp>

#include <unistd.h>

namespace kvb::restore {
namespace json = boost::json;
namespace res = kube::resources;

Result<std::unique_ptr<location::Lock>> lock_restore(location::Location& loc, const std::string& name, std::chrono::milliseconds wait) {
  auto lock = loc.lock_path("journal/restore-" + name + ".lock", wait);
  if (!lock && lock.error().code == Errc::kConflict) return Error(Errc::kConflict, "restore " + name + " is running (" + lock.error().message + ")");
  return lock;
}

RestoreRunner::RestoreRunner(std::shared_ptr<kube::Client> client, location::Location& loc, RestoreSpec spec,
                             ProgressFn progress)
    : client_(std::move(client)), loc_(loc), spec_(std::move(spec)), progress_(std::move(progress)) {}

RestoreRunner::~RestoreRunner() = default;

Status RestoreRunner::prepare_uploads(const RestorePlan& plan, bool required) {
  if (!plan.uses_repository()) return ok();
  if (!open_repository_ && !required) return ok();  // resume: uploads that are done need no repository
  if (!open_repository_) return Error(Errc::kInvalidArgument, "volumes from the repository, but no repository to read them from");
  auto repository = open_repository_();
  if (!repository) return repository.error();
  std::vector<std::pair<std::string, std::string>> ids;
  for (const auto& vm : plan.vms) {
    for (const auto& v : vm.volumes) {
      if (v.from_repository) ids.emplace_back(v.copy.repository_snapshot, "VM " + vm.source.ns + "/" + vm.source.name + ", volume " + v.source.name);
    }
  }
  KVB_CHECK(check_repository_snapshots(**repository, ids));
  KVB_TRY(uploader_, make_volume_uploader(client_, *repository, spec_));
  say("restoring " + std::to_string(ids.size()) + " volume(s) from the repository through CDI upload");
  return ok();
}

Result<RestoreRecord> RestoreRunner::run(std::stop_token stop) {
  Stopwatch clock;
  KVB_TRY(auto plan, make_restore_plan(*client_, loc_, spec_));
  KVB_CHECK(prepare_uploads(plan, true));
  const int64_t plan_ms = clock.lap();
  KVB_TRY(auto lock, lock_restore(loc_, spec_.name, location::kRunLockContention));
  // Under the lock, again: another run of this name may have started meanwhile.
  if (loc_.exists(restore_record_path(spec_.name))) {
    return Error(Errc::kInvalidArgument, "restore \"" + spec_.name + "\" already exists in " + loc_.describe());
  }
  RestoreRecord rec;
  rec.name = spec_.name;
  rec.backup = spec_.backup;
  rec.kvbackup_version = kKvbackupVersion;
  rec.cluster = redact_url(client_->config().cluster.server);
  rec.started = WallClock::now();
  rec.options = spec_;
  add_millis(rec.millis, "plan", plan_ms);
  for (const auto& vm : plan.vms) {
    VmRestoreRecord r;
    r.source_ns = vm.source.ns;
    r.source_name = vm.source.name;
    r.ns = vm.ns;
    r.name = vm.name;
    r.run_strategy = vm.run_strategy;
    rec.vms.push_back(r);
  }
  KVB_CHECK(save(rec));
  for (const auto& ns : plan.create_namespaces) {
    auto r = client_->create(res::kNamespaces, "",
                             json::object{{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", json::object{{"name", ns}}}});
    if (!r && r.error().code != Errc::kAlreadyExists) {
      rec.phase = RestorePhase::kFailed;
      rec.error = sanitize_foreign("creating namespace " + ns + ": " + r.error().message);
      rec.finished = WallClock::now();
      KVB_CHECK(save(rec));
      return rec;
    }
    say("created namespace " + ns);
  }
  add_millis(rec.millis, "namespaces", clock.lap());
  std::vector<size_t> all(plan.vms.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  return restore_vms(rec, plan, all, stop);
}

Result<RestoreRecord> RestoreRunner::resume(RestoreRecord rec) {
  // The VMs the interrupted run had not finished, planned again: what it made is its own now.
  RestoreSpec spec = rec.options;
  spec.name = rec.name;
  spec.backup = rec.backup;
  spec.vms.clear();
  spec.create_namespaces = true;  // namespaces it created exist; none are new
  for (const auto& v : rec.vms) {
    if (v.phase == "Pending") spec.vms.push_back(v.source_ns + "/" + v.source_name);
  }
  if (spec.vms.empty()) return rec;
  KVB_TRY(auto lock, lock_restore(loc_, rec.name));
  auto sources = cluster_sources(*client_, loc_);
  struct Resuming : PlanSources {
    PlanSources& inner;
    explicit Resuming(PlanSources& i) : inner(i) {}
    Result<record::BackupRecord> backup(const std::string& n) override { return inner.backup(n); }
    bool restore_exists(const std::string&) override { return false; }  // its own record: being resumed
    Result<json::object> saved(const std::string& b, const std::string& p) override { return inner.saved(b, p); }
    Result<std::optional<json::object>> live(const kube::ResourceRef& r, const std::string& ns, const std::string& n) override {
      return inner.live(r, ns, n);
    }
  } resuming(*sources);
  spec_ = spec;
  KVB_TRY(auto plan, plan_restore(spec_, resuming));
  KVB_CHECK(prepare_uploads(plan, false));
  std::vector<size_t> which;
  for (size_t i = 0; i < plan.vms.size(); ++i) {
    for (size_t j = 0; j < rec.vms.size(); ++j) {
      if (rec.vms[j].source_ns == plan.vms[i].source.ns && rec.vms[j].source_name == plan.vms[i].source.name) which.push_back(j);
    }
  }
  // restore_vms indexes the plan; map the record's entries onto it.
  RestoreRecord sub = rec;
  sub.vms.clear();
  for (size_t j : which) sub.vms.push_back(rec.vms[j]);
  std::vector<size_t> all(plan.vms.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  auto checkpoint_into = [&](const RestoreRecord& s) {
    for (size_t k = 0; k < which.size(); ++k) rec.vms[which[k]] = s.vms[k];
  };
  auto done = restore_vms(sub, plan, all, {}, [&](const RestoreRecord& s) {
    checkpoint_into(s);
    return save(rec);
  });
  if (!done) return done.error();
  checkpoint_into(*done);
  finish(rec);
  KVB_CHECK(save(rec));
  return rec;
}

Status RestoreRunner::save(const RestoreRecord& rec) {
  return loc_.put(restore_record_path(rec.name), json::serialize(rec.to_json()), true);
}

void RestoreRunner::say(const std::string& line) {
  if (progress_) progress_(sanitize_foreign(line));
}

void RestoreRunner::finish(RestoreRecord& rec) {
  size_t failed = 0;
  for (const auto& v : rec.vms) failed += v.phase != "Completed";
  rec.phase = failed == 0 ? RestorePhase::kCompleted
                          : (failed == rec.vms.size() ? RestorePhase::kFailed : RestorePhase::kPartiallyFailed);
  rec.finished = WallClock::now();
}

Result<RestoreRecord> RestoreRunner::restore_vms(RestoreRecord& rec, const RestorePlan& plan, const std::vector<size_t>& which,
                                                 std::stop_token stop, std::function<Status(const RestoreRecord&)> persist) {
  if (!persist) persist = [this](const RestoreRecord& r) { return save(r); };
  Stopwatch clock;
  for (size_t i : which) {
    auto& r = rec.vms[i];
    say("restoring " + r.source_ns + "/" + r.source_name + " as " + r.ns + "/" + r.name);
    RestoreStage shown = r.stage;
    VmRestore job(client_, spec_, plan.vms[i], r, [&]() -> Status {
      KVB_CHECK(persist(rec));  // on disk first: what the line says is what recover will find
      if (r.stage != shown) say(r.ns + "/" + r.name + ": " + std::string(to_string(shown = r.stage)));
      return ok();
    }, stop, uploader_.get());
    auto st = stop.stop_requested() ? Status(Error(Errc::kCancelled, "interrupted before it started")) : job.run();
    if (st) {
      r.phase = "Completed";
      say(r.ns + "/" + r.name + ": restored");
    } else {
      r.phase = "Failed";
      r.reason = sanitize_foreign(st.error().message);
      job.undo();
      say(r.ns + "/" + r.name + ": failed: " + r.reason);
    }
    KVB_CHECK(persist(rec));
  }
  add_millis(rec.millis, "vms", clock.lap());
  finish(rec);
  KVB_CHECK(persist(rec));
  return rec;
}

}  // namespace kvb::restore
