// kvbackup backup create | list | describe | delete, and kvbackup recover.
#include "common/allocator.h"
#include "backup/journal.h"
#include "backup/recover.h"
#include "backup/runner.h"
#include "cli/backup_report.h"
#include "cli/options.h"
#include "cli/progress_board.h"
#include "cli/stop_signals.h"
#include "common/duration.h"
#include "common/sanitize.h"
#include "kube/object.h"
#include "kube/resource.h"
#include "cli/repo_password.h"
#include "location/location.h"
#include "repo/repository.h"
#include "record/naming.h"
#include "restore/recover.h"
#include "restore/verify.h"

#include <boost/json.hpp>
#include <fmt/format.h>

#include <unistd.h>

#include <cstdio>
#include <set>

namespace kvb::cli {
namespace json = boost::json;

namespace {

// The command line's text; defaults come from backup::BackupSpec (record/options.h).
struct BackupOptions {
  std::string name;
  std::string location;
  ScopeOptions scope;
  std::string rules, pre_rule, post_rule, freeze_method, on_no_agent, consistency_group;
  int concurrency = 0;
  std::string freeze_deadline, ready_timeout, freeze_wait;
  std::string snapshot_class;
  std::vector<std::string> snapshot_class_map;
  bool wait = true;
  std::string output = "table";
  std::string vm;  // describe: one VM
  bool keep_snapshots = false;
  bool copy_data = false;
  bool keep_data = false, prune = false;
  int data_concurrency = 0;
  std::string password_file;

  BackupOptions() {
    backup::BackupSpec d;
    rules = to_string(d.rules);
    freeze_method = to_string(d.freeze_method);
    on_no_agent = to_string(d.on_no_agent);
    consistency_group = to_string(d.consistency_group);
    concurrency = d.concurrency;
    freeze_deadline = format_duration(d.freeze_deadline);
    ready_timeout = format_duration(d.ready_timeout);
    freeze_wait = format_duration(d.freeze_wait);
    data_concurrency = d.data_concurrency;
  }
};

Result<std::chrono::milliseconds> positive_duration(const std::string& flag, const std::string& text, const char* example) {
  auto d = parse_duration(text);
  if (!d || *d <= std::chrono::nanoseconds::zero()) {
    return Error(Errc::kInvalidArgument, flag + " \"" + text + "\": expected a positive duration such as " + example);
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(*d);
}

Result<backup::BackupSpec> make_spec(const GlobalOptions& g, const BackupOptions& o, const std::string& default_ns) {
  backup::BackupSpec s;
  KVB_CHECK(record::validate_backup_name(o.name));
  s.name = o.name;
  auto scope = make_scope(g, o.scope, default_ns);
  s.scope = {scope.namespaces, scope.all_namespaces, scope.vm_names, scope.label_selector};
  KVB_TRY(auto rules, record::parse_rules_mode(o.rules, "--rules"));
  // --pre-rule/--post-rule without --rules custom mean custom.
  bool custom = rules == record::RulesMode::kCustom || !o.pre_rule.empty() || !o.post_rule.empty();
  s.rules = custom ? record::RulesMode::kCustom : record::RulesMode::kBuiltin;
  if (custom && o.pre_rule.empty()) return Error(Errc::kInvalidArgument, "--rules custom needs --pre-rule FILE|NAME");
  if (custom && o.post_rule.empty()) {
    return Error(Errc::kInvalidArgument, "--pre-rule needs a --post-rule: a VM frozen by a custom rule must be thawed by one");
  }
  s.pre_rule = o.pre_rule;
  s.post_rule = o.post_rule;
  KVB_TRY(s.freeze_method, record::parse_freeze_method(o.freeze_method, "--freeze-method"));
  if (custom && s.freeze_method == record::FreezeMethod::kSubresource) {
    return Error(Errc::kInvalidArgument, "--freeze-method subresource freezes with KubeVirt's API; it cannot run custom rules");
  }
  KVB_TRY(s.on_no_agent, record::parse_on_no_agent(o.on_no_agent, "--on-no-agent"));
  if (o.concurrency < 1 || o.concurrency > 1000) {
    return Error(Errc::kInvalidArgument, "--concurrency " + std::to_string(o.concurrency) + ": must be 1..1000");
  }
  s.concurrency = o.concurrency;
  KVB_TRY(s.freeze_deadline, positive_duration("--freeze-deadline", o.freeze_deadline, "30s or 1500ms"));
  KVB_TRY(s.ready_timeout, positive_duration("--ready-timeout", o.ready_timeout, "10m"));
  KVB_TRY(s.freeze_wait, positive_duration("--freeze-wait", o.freeze_wait, "2m"));
  KVB_TRY(s.consistency_group, record::parse_consistency_group(o.consistency_group, "--consistency-group"));
  if (!o.snapshot_class.empty() && !o.snapshot_class_map.empty()) {
    return Error(Errc::kInvalidArgument, "--snapshot-class and --snapshot-class-map exclude each other");
  }
  s.snapshot_class = o.snapshot_class;
  for (const auto& m : o.snapshot_class_map) {
    auto eq = m.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == m.size()) {
      return Error(Errc::kInvalidArgument, "--snapshot-class-map \"" + m + "\": expected STORAGECLASS=VOLUMESNAPSHOTCLASS");
    }
    s.snapshot_class_map[m.substr(0, eq)] = m.substr(eq + 1);
  }
  if (o.data_concurrency < 1 || o.data_concurrency > 64) {
    return Error(Errc::kInvalidArgument, "--data-concurrency " + std::to_string(o.data_concurrency) + ": must be 1..64");
  }
  if (!o.copy_data && !o.password_file.empty()) return Error(Errc::kInvalidArgument, "--password-file is for --copy-data");
  s.copy_data = o.copy_data;
  s.data_concurrency = o.data_concurrency;
  return s;
}

// <location>/repository, created on first use (docs/backup.md "Copying the data").
Result<std::unique_ptr<repo::Repository>> open_data_repository(const BackupOptions& o) {
  tune_allocator_for_streaming();  // the copies stream through the repository (common/allocator.h)
  KVB_TRY(auto pw, repository_password(o.password_file));
  std::string where = location::child_location(o.location.empty() ? location::default_location() : o.location, "repository");
  KVB_TRY(auto loc, location::open(where, location::OpenMode::kCreate));
  std::shared_ptr<location::Location> shared(std::move(loc));
  if (!shared->exists("config")) {
    KVB_CHECK(repo::Repository::init(*shared, pw));
  }
  auto r = repo::Repository::open(shared, pw);
  if (!r) return Error(r.error().code, "repository " + where + ": " + r.error().message);
  return r;
}

int create(const GlobalOptions& g, const BackupOptions& o) {
  StopSignals signals;  // before the client starts its threads
  auto loc = open_location(o.location);
  if (!loc) return report_error(loc.error());
  auto client = connect(g);
  if (!client) return report_error(client.error());
  auto spec = make_spec(g, o, (*client)->default_namespace());
  if (!spec) return report_error(spec.error());
  // The repository before anything is frozen: a wrong password costs nothing.
  std::unique_ptr<repo::Repository> data_repo;
  if (spec->copy_data) {
    auto r = open_data_repository(o);
    if (!r) return report_error(r.error());
    data_repo = std::move(*r);
  }
  // On a terminal (and not -o json) the copies get a live board; elsewhere plain event lines.
  ProgressBoard board(::isatty(STDERR_FILENO) != 0 && o.output != "json");
  backup::ProgressFn progress = [&board](const std::string& line) { board.print(line); };
  backup::BackupRunner runner(*client, **loc, *spec, progress, data_repo.get());
  runner.on_transfer([&board](const backup::TransferEvent& e) { board.update(e); });
  auto rec = runner.run(signals.token());
  board.close();
  if (!rec) return report_error(rec.error());
  if (o.output == "json") {
    std::printf("%s\n", json::serialize(rec->to_json()).c_str());
  } else {
    std::printf("%s", vm_table(*rec).c_str());
    std::printf("\nBackup %s: %s%s, recorded in %s/%s\n", rec->name.c_str(), std::string(to_string(rec->phase)).c_str(),
                rec->error.empty() ? "" : (" (" + printable_text(rec->error) + ")").c_str(), (*loc)->describe().c_str(),
                record::backup_record_path(rec->name).c_str());
  }
  if (signals.received() != 0) return 128 + signals.received();
  return every_vm_as_promised(*rec) ? kExitOk : kExitFailed;
}

int list(const BackupOptions& o) {
  auto loc = open_existing_location(o.location);
  if (!loc) return report_error(loc.error());
  std::vector<std::string> names;
  if ((*loc)->exists("backups")) {
    auto listed = (*loc)->list("backups");
    if (!listed) return report_error(listed.error());
    names = *listed;
  }
  json::array out;
  std::string table = fmt::format("{:<30}  {:<15}  {:<24}  {:>4}  {:>4}  {:>5}  {:>6}\n", "NAME", "PHASE", "STARTED", "VMS",
                                  "FSC", "CRASH", "FAILED");
  for (const auto& name : names) {
    auto rec = record::load_backup_record(**loc, name);
    if (!rec) {
      table += fmt::format("{:<30}  {}\n", printable(name), "unreadable: " + printable_text(rec.error().message));
      continue;
    }
    int fsc = 0, crash = 0, failed = 0;
    for (const auto& v : rec->vms) {
      failed += v.phase == record::VmPhase::kFailed;
      if (v.phase != record::VmPhase::kCompleted && v.phase != record::VmPhase::kPartiallyFailed) continue;
      fsc += v.consistency == record::Consistency::kFileSystemConsistent;
      crash += v.consistency == record::Consistency::kCrashConsistent;
    }
    std::string phase(to_string(rec->phase));
    if (rec->phase == record::BackupPhase::kInProgress && !backup::backup_running(**loc, name)) phase = "InProgress?";
    table += fmt::format("{:<30}  {:<15}  {:<24}  {:>4}  {:>4}  {:>5}  {:>6}\n", name, phase, format_rfc3339(rec->started),
                         rec->vms.size(), fsc, crash, failed);
    out.push_back(json::object{{"name", name}, {"phase", to_string(rec->phase)},
                               {"started", format_rfc3339(rec->started)}, {"vms", rec->vms.size()}});
  }
  if (o.output == "json") std::printf("%s\n", json::serialize(out).c_str());
  else std::printf("%s", table.c_str());
  return kExitOk;
}

int describe(const BackupOptions& o) {
  auto loc = open_existing_location(o.location);
  if (!loc) return report_error(loc.error());
  auto rec = record::load_backup_record(**loc, o.name);
  if (!rec) return report_error(rec.error());
  if (!o.vm.empty()) {
    bool found = false;
    for (const auto& v : rec->vms) found = found || o.vm == v.name || o.vm == v.ns + "/" + v.name;
    if (!found) return report_error(Error(Errc::kNotFound, "backup \"" + o.name + "\" has no VM \"" + o.vm + "\""));
  }
  if (o.output == "json") std::printf("%s\n", json::serialize(rec->to_json()).c_str());
  else std::printf("%s", describe_backup(*rec, o.vm).c_str());
  return kExitOk;
}

// The backup's VolumeSnapshots: those its record names, and those labelled with
// its run (a record that never got its final write names none).
Result<std::set<std::pair<std::string, std::string>>> snapshots_of(kube::Client& client, const record::BackupRecord& rec) {
  std::set<std::pair<std::string, std::string>> out;
  for (const auto& v : rec.vms) {
    for (const auto& vol : v.volumes) {
      if (!vol.volume_snapshot.empty() && !vol.deleted) out.insert({v.ns, vol.volume_snapshot});
    }
  }
  kube::ListOptions lo;
  lo.label_selector = rec.uid.empty() ? std::string(record::kBackupLabel) + "=" + rec.name
                                      : std::string(record::kBackupUidLabel) + "=" + rec.uid;
  std::vector<std::string> nss = rec.options.scope.all_namespaces || rec.options.scope.namespaces.empty()
                                     ? std::vector<std::string>{""}
                                     : rec.options.scope.namespaces;
  for (const auto& ns : nss) {
    KVB_TRY(auto list, client.list(kube::resources::kVolumeSnapshots, ns, lo));
    for (const auto& s : list.items) out.insert({std::string(kube::namespace_of(s)), std::string(kube::name_of(s))});
  }
  return out;
}

// The repository snapshots a backup's --copy-data made are forgotten with it
// (unless --keep-data); their data goes at the next prune (--prune: now).
Status forget_copies(const BackupOptions& o, const record::BackupRecord& rec) {
  std::vector<std::string> ids;
  for (const auto& vm : rec.vms) {
    for (const auto& v : vm.volumes) {
      if (v.copy && !v.copy->repository_snapshot.empty()) ids.push_back(v.copy->repository_snapshot);
    }
  }
  if (ids.empty() || o.keep_data) return ok();
  KVB_TRY(auto pw, repository_password(o.password_file));
  std::string where = location::child_location(o.location.empty() ? location::default_location() : o.location, "repository");
  KVB_TRY(auto loc, location::open(where, location::OpenMode::kExisting));
  repo::OpenOptions opts;
  opts.mode = repo::LockMode::kExclusive;
  opts.lock_wait = std::chrono::seconds(60);
  KVB_TRY(auto repo, repo::Repository::open(std::shared_ptr<location::Location>(std::move(loc)), pw, opts));
  KVB_TRY(auto existing, repo->snapshots());
  std::set<std::string> there;
  for (const auto& s : existing) there.insert(s.id);
  std::erase_if(ids, [&](const std::string& id) { return !there.count(id); });  // forgotten already: fine
  KVB_TRY(auto forgotten, repo->forget_ids(ids, false));
  std::fprintf(stderr, "forgot %zu repository snapshots\n", forgotten.removed.size());
  if (o.prune) {
    KVB_TRY(auto pr, repo->prune());
    std::fprintf(stderr, "pruned the repository: %zu packs removed, %zu repacked\n", pr.packs_removed, pr.packs_repacked);
  }
  return ok();
}

int remove(const GlobalOptions& g, const BackupOptions& o) {
  auto loc = open_existing_location(o.location);
  if (!loc) return report_error(loc.error());
  auto rec = record::load_backup_record(**loc, o.name);
  if (!rec) return report_error(rec.error());
  // A run of this backup that died left a journal entry: the VMs it names may
  // still be frozen, and the entry is what finds them. Recover first (it
  // leaves a live run's entry alone); never delete an entry that still guards
  // a frozen guest.
  if ((*loc)->exists(record::journal_entry_path(o.name)) && !backup::backup_running(**loc, o.name)) {
    auto client = connect(g);
    if (!client) return report_error(client.error().with_context("a run of backup " + o.name + " died; thawing its VMs first"));
    // One quick look first: recover would retry an unreachable cluster for a minute per VM.
    kube::CallOptions probe;
    probe.timeout = std::chrono::seconds(10);
    probe.retry = false;
    if (auto v = (*client)->server_version(probe); !v) {
      return report_error(Error(v.error().code, "a run of backup " + o.name +
                                                    " died and its VMs may still be frozen, but the cluster cannot be reached to thaw them (" +
                                                    v.error().message + "); the backup was kept"));
    }
    auto report = backup::recover(*client, **loc);
    for (const auto& l : report.lines) std::fprintf(stderr, "recover: %s\n", l.c_str());
    if ((*loc)->exists(record::journal_entry_path(o.name)) && !backup::backup_running(**loc, o.name)) {
      std::string why = report.problems.empty() ? std::string("its journal entry is still there") : report.problems.front();
      return report_error(Error(Errc::kConflict, "a run of backup " + o.name + " died and its VMs could not all be confirmed thawed (" +
                                                     why + "); the backup was kept: run kvbackup recover, then delete it"));
    }
  }
  // A running backup is not deleted under its feet (it would write its record back).
  auto lock = backup::lock_journal(**loc, o.name);
  if (!lock && lock.error().code == Errc::kConflict) {
    return report_error(Error(Errc::kConflict, "backup " + o.name + " is still running; wait for it or stop it first"));
  }
  if (!lock) return report_error(lock.error());
  if (!o.keep_snapshots) {
    auto client = connect(g);
    if (!client) return report_error(client.error());
    auto snaps = snapshots_of(**client, *rec);
    if (!snaps) return report_error(snaps.error().with_context("finding the VolumeSnapshots of backup " + o.name + " (the backup was kept)"));
    int deleted = 0;
    for (const auto& [ns, name] : *snaps) {
      auto st = (*client)->remove(kube::resources::kVolumeSnapshots, ns, name);
      if (!st && st.error().code != Errc::kNotFound) {
        return report_error(Error(st.error().code, "deleting VolumeSnapshot " + ns + "/" + name + ": " + st.error().message +
                                                       " (the backup was kept)"));
      }
      deleted += st ? 1 : 0;
    }
    std::fprintf(stderr, "deleted %d VolumeSnapshots\n", deleted);
  }
  if (auto st = forget_copies(o, *rec); !st) {
    return report_error(Error(st.error().code, st.error().message + " (the backup was kept; --keep-data deletes it without its copies)"));
  }
  if (auto st = (*loc)->remove(record::backup_dir(o.name)); !st) return report_error(st.error());
  lock->reset();
  std::printf("backup %s deleted\n", o.name.c_str());
  return kExitOk;
}

int recover_cmd(const GlobalOptions& g, const BackupOptions& o) {
  auto loc = open_existing_location(o.location);
  if (!loc) return report_error(loc.error());
  auto client = connect(g);
  if (!client) return report_error(client.error());
  auto report = backup::recover(*client, **loc);
  for (const auto& l : report.lines) std::printf("%s\n", printable(l).c_str());
  for (const auto& p : report.problems) std::fprintf(stderr, "kvbackup: %s\n", sanitize_foreign(p).c_str());
  std::printf("recover: %d stale journal entries, %d VMs, %d thawed, %d entries of running backups left alone\n",
              report.entries, report.vms, report.thawed, report.live);
  auto restores = restore::recover_restores(*client, **loc);
  for (const auto& l : restores.lines) std::printf("%s\n", printable(l).c_str());
  for (const auto& p : restores.problems) std::fprintf(stderr, "kvbackup: %s\n", sanitize_foreign(p).c_str());
  if (restores.interrupted > 0) {
    std::printf("recover: %d interrupted restores, %d VMs completed, %d rolled back\n", restores.interrupted, restores.completed,
                restores.rolled_back);
  }
  auto verifications = restore::recover_verifications(*client, **loc);
  for (const auto& l : verifications.lines) std::printf("%s\n", printable(l).c_str());
  for (const auto& p : verifications.problems) std::fprintf(stderr, "kvbackup: %s\n", sanitize_foreign(p).c_str());
  if (verifications.cleaned > 0) std::printf("recover: %d interrupted verifications cleaned up\n", verifications.cleaned);
  return report.ok() && restores.problems.empty() && verifications.problems.empty() ? kExitOk : kExitFailed;
}

void add_location(CLI::App* cmd, BackupOptions& o) {
  cmd->add_option("--location", o.location, "Backup location directory (default: $KVBACKUP_LOCATION, else ./kvbackup-backups)");
}

std::vector<std::string> names_of(std::initializer_list<std::string_view> v) { return {v.begin(), v.end()}; }

}  // namespace

void register_backup(CLI::App& app, GlobalOptions& g, CommandAction& run) {
  auto o = std::make_shared<BackupOptions>();
  using namespace record;
  auto* cmd = app.add_subcommand("backup", "Create, list, describe and delete VM backups");
  cmd->require_subcommand(1);

  auto* c = cmd->add_subcommand("create", "Back up VMs: freeze, snapshot every volume, thaw at the cut, save resources and a record");
  c->add_option("name", o->name, "Backup name")->required();
  add_location(c, *o);
  add_scope_options(c, o->scope);
  c->add_option("--rules", o->rules, "builtin (virt-freezer per VM) or custom (--pre-rule/--post-rule)")
      ->check(CLI::IsMember(names_of({to_string(RulesMode::kBuiltin), to_string(RulesMode::kCustom)})))
      ->capture_default_str();
  c->add_option("--pre-rule", o->pre_rule, "Pre-exec rule: a file, or the name of a Stork Rule in the VMs' namespace");
  c->add_option("--post-rule", o->post_rule, "Post-exec rule: a file, or the name of a Stork Rule");
  c->add_option("--freeze-method", o->freeze_method, "exec (virt-freezer in the launcher pod) or subresource (KubeVirt freeze API)")
      ->check(CLI::IsMember(names_of({to_string(FreezeMethod::kExec), to_string(FreezeMethod::kSubresource)})))
      ->capture_default_str();
  c->add_option("--on-no-agent", o->on_no_agent, "VMs without a guest agent: crash-consistent, skip or fail")
      ->check(CLI::IsMember(names_of({to_string(OnNoAgent::kCrashConsistent), to_string(OnNoAgent::kSkip), to_string(OnNoAgent::kFail)})))
      ->capture_default_str();
  c->add_option("--concurrency", o->concurrency, "VMs backed up at once")->capture_default_str();
  c->add_option("--freeze-deadline", o->freeze_deadline, "Longest a guest may stay frozen waiting for its snapshots' cut")
      ->capture_default_str();
  c->add_option("--ready-timeout", o->ready_timeout, "Longest to wait for readyToUse after the cut")->capture_default_str();
  c->add_option("--freeze-wait", o->freeze_wait, "Longest to wait while another backup holds a VM's freeze lease")
      ->capture_default_str();
  c->add_option("--consistency-group", o->consistency_group, "none (per VM) or all (freeze every VM, cut, thaw every VM)")
      ->check(CLI::IsMember(names_of({to_string(ConsistencyGroup::kNone), to_string(ConsistencyGroup::kAll)})))
      ->capture_default_str();
  c->add_option("--snapshot-class", o->snapshot_class, "One VolumeSnapshotClass for every volume");
  c->add_option("--snapshot-class-map", o->snapshot_class_map, "STORAGECLASS=VOLUMESNAPSHOTCLASS (repeatable)")->delimiter(',');
  c->add_flag("--copy-data", o->copy_data, "After the thaw, copy every snapshot's data into <location>/repository (VirtualMachineExport)");
  c->add_option("--data-concurrency", o->data_concurrency, "Volumes copied at once with --copy-data")->capture_default_str();
  c->add_option("--password-file", o->password_file, "Repository password for --copy-data (else $KVBACKUP_REPO_PASSWORD, else a prompt)");
  c->add_flag("--wait,!--no-wait", o->wait, "Wait for readyToUse before saving (the default; --no-wait is not supported yet)");
  c->add_option("-o,--output", o->output, "table or json")->check(CLI::IsMember({"table", "json"}));
  c->callback([&run, &g, o] {
    run = [&g, o] {
      if (!o->wait) return report_error(Error(Errc::kInvalidArgument, "--no-wait: not supported yet; the record needs readyToUse"));
      return create(g, *o);
    };
  });

  auto* l = cmd->add_subcommand("list", "List the backups in a location");
  add_location(l, *o);
  l->add_option("-o,--output", o->output, "table or json")->check(CLI::IsMember({"table", "json"}));
  l->callback([&run, o] { run = [o] { return list(*o); }; });

  auto* d = cmd->add_subcommand("describe", "Show a backup's record: per VM consistency, freeze timeline, volumes, rule runs");
  d->add_option("name", o->name, "Backup name")->required();
  add_location(d, *o);
  d->add_option("--vm", o->vm, "Only this VM (NAME or NAMESPACE/NAME)");
  d->add_option("-o,--output", o->output, "table or json")->check(CLI::IsMember({"table", "json"}));
  d->callback([&run, o] { run = [o] { return describe(*o); }; });

  auto* del = cmd->add_subcommand("delete", "Delete a backup: its VolumeSnapshots in the cluster, then its files");
  del->add_option("name", o->name, "Backup name")->required();
  add_location(del, *o);
  del->add_flag("--keep-snapshots", o->keep_snapshots, "Delete only the files; leave the VolumeSnapshots");
  del->add_flag("--keep-data", o->keep_data, "Leave the backup's copies in the repository (else they are forgotten)");
  del->add_flag("--prune", o->prune, "Prune the repository after forgetting the backup's copies");
  del->add_option("--password-file", o->password_file, "Repository password (else $KVBACKUP_REPO_PASSWORD, else a prompt)");
  del->callback([&run, &g, o] { run = [&g, o] { return remove(g, *o); }; });

  auto* r = app.add_subcommand("recover",
                               "Thaw VMs that a kvbackup process which died left frozen (from the location's journal), and "
                               "complete or roll back restores it interrupted");
  add_location(r, *o);
  r->callback([&run, &g, o] { run = [&g, o] { return recover_cmd(g, *o); }; });
}

}  // namespace kvb::cli
