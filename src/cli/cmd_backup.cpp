// kvbackup backup create | list | describe | delete, and kvbackup recover.
#include "backup/journal.h"
#include "backup/runner.h"
#include "backup/snapshots.h"
#include "cli/backup_report.h"
#include "cli/options.h"
#include "cli/stop_signals.h"
#include "common/duration.h"
#include "kube/object.h"
#include "kube/resource.h"
#include "kubevirt/resources.h"
#include "location/location.h"

#include <boost/json.hpp>
#include <fmt/format.h>

#include <unistd.h>

#include <cstdio>

namespace kvb::cli {
namespace json = boost::json;

namespace {

struct BackupOptions {
  std::string name;
  std::string location;
  ScopeOptions scope;
  std::string rules = "builtin";
  std::string pre_rule, post_rule;
  std::string freeze_method = "exec";
  std::string on_no_agent = "crash-consistent";
  int concurrency = 10;
  std::string freeze_deadline = "30s";
  std::string ready_timeout = "10m";
  std::string consistency_group = "none";
  std::string snapshot_class;
  std::vector<std::string> snapshot_class_map;
  bool wait = true;
  std::string output = "table";
  std::string vm;  // describe: one VM
  bool keep_snapshots = false;
};

Result<backup::BackupSpec> make_spec(const GlobalOptions& g, const BackupOptions& o, const std::string& default_ns) {
  backup::BackupSpec s;
  s.name = o.name;
  KVB_CHECK(backup::validate_backup_name(o.name));
  s.scope = make_scope(g, o.scope, default_ns);
  bool custom = o.rules == "custom" || !o.pre_rule.empty() || !o.post_rule.empty();
  // --pre-rule/--post-rule without --rules custom mean custom.
  s.rules = custom ? backup::RulesMode::kCustom : backup::RulesMode::kBuiltin;
  if (custom && o.pre_rule.empty()) return Error(Errc::kInvalidArgument, "--rules custom needs --pre-rule FILE|NAME");
  if (custom && o.post_rule.empty()) {
    return Error(Errc::kInvalidArgument, "--pre-rule needs a --post-rule: a VM frozen by a custom rule must be thawed by one");
  }
  s.pre_rule = o.pre_rule;
  s.post_rule = o.post_rule;
  s.freeze_method = o.freeze_method == "subresource" ? backup::FreezeMethod::kSubresource : backup::FreezeMethod::kExec;
  if (custom && s.freeze_method == backup::FreezeMethod::kSubresource) {
    return Error(Errc::kInvalidArgument, "--freeze-method subresource freezes with KubeVirt's API; it cannot run custom rules");
  }
  s.on_no_agent = o.on_no_agent == "skip"   ? backup::OnNoAgent::kSkip
                  : o.on_no_agent == "fail" ? backup::OnNoAgent::kFail
                                            : backup::OnNoAgent::kCrashConsistent;
  if (o.concurrency < 1 || o.concurrency > 1000) {
    return Error(Errc::kInvalidArgument, "--concurrency " + std::to_string(o.concurrency) + ": must be 1..1000");
  }
  s.concurrency = o.concurrency;
  auto deadline = parse_duration(o.freeze_deadline);
  if (!deadline || *deadline <= std::chrono::nanoseconds::zero()) {
    return Error(Errc::kInvalidArgument, "--freeze-deadline \"" + o.freeze_deadline + "\": expected a positive duration such as 30s or 1500ms");
  }
  s.freeze_deadline = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline);
  auto ready = parse_duration(o.ready_timeout);
  if (!ready || *ready <= std::chrono::nanoseconds::zero()) {
    return Error(Errc::kInvalidArgument, "--ready-timeout \"" + o.ready_timeout + "\": expected a positive duration such as 10m");
  }
  s.ready_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(*ready);
  s.consistency_group = o.consistency_group == "all" ? backup::ConsistencyGroup::kAll : backup::ConsistencyGroup::kNone;
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
  s.wait = o.wait;
  return s;
}

int create(const GlobalOptions& g, const BackupOptions& o) {
  StopSignals signals;  // before the client starts its threads
  auto loc = open_location(o.location);
  if (!loc) return report_error(loc.error());
  auto client = connect(g);
  if (!client) return report_error(client.error());
  auto spec = make_spec(g, o, (*client)->default_namespace());
  if (!spec) return report_error(spec.error());
  bool tty = ::isatty(STDERR_FILENO) != 0;
  backup::ProgressFn progress = [tty](const std::string& line) {
    std::fprintf(stderr, tty ? "\033[2m%s\033[0m\n" : "%s\n", line.c_str());
  };
  backup::Runner runner(*client, **loc, *spec, progress);
  auto rec = runner.run(signals.token());
  if (!rec) return report_error(rec.error());
  if (o.output == "json") {
    std::printf("%s\n", json::serialize(rec->to_json()).c_str());
  } else {
    std::printf("%s", vm_table(*rec).c_str());
    std::printf("\nBackup %s: %s%s, recorded in %s/%s\n", rec->name.c_str(), std::string(to_string(rec->phase)).c_str(),
                rec->error.empty() ? "" : (" (" + rec->error + ")").c_str(), (*loc)->describe().c_str(),
                backup::backup_record_path(rec->name).c_str());
  }
  if (signals.received() != 0) return 128 + signals.received();
  return every_vm_as_promised(*rec) ? kExitOk : kExitFailed;
}

int list(const BackupOptions& o) {
  auto loc = open_existing_location(o.location);
  if (!loc) return report_error(loc.error());
  auto names = (*loc)->list("backups");
  if (!names) return report_error(names.error());
  json::array out;
  std::string table = fmt::format("{:<30}  {:<15}  {:<24}  {:>4}  {:>4}  {:>5}  {:>6}\n", "NAME", "PHASE", "STARTED", "VMS",
                                  "FSC", "CRASH", "FAILED");
  for (const auto& name : *names) {
    auto rec = backup::load_backup_record(**loc, name);
    if (!rec) {
      table += fmt::format("{:<30}  {}\n", name, "unreadable: " + rec.error().message);
      continue;
    }
    int fsc = 0, crash = 0, failed = 0;
    for (const auto& v : rec->vms) {
      failed += v.phase == backup::VmPhase::kFailed;
      if (v.phase != backup::VmPhase::kCompleted) continue;
      fsc += v.consistency == backup::Consistency::kFileSystemConsistent;
      crash += v.consistency == backup::Consistency::kCrashConsistent;
    }
    table += fmt::format("{:<30}  {:<15}  {:<24}  {:>4}  {:>4}  {:>5}  {:>6}\n", name, to_string(rec->phase),
                         format_rfc3339(rec->started), rec->vms.size(), fsc, crash, failed);
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
  auto rec = backup::load_backup_record(**loc, o.name);
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

int remove(const GlobalOptions& g, const BackupOptions& o) {
  auto loc = open_existing_location(o.location);
  if (!loc) return report_error(loc.error());
  auto rec = backup::load_backup_record(**loc, o.name);
  if (!rec) return report_error(rec.error());
  if (!o.keep_snapshots) {
    auto client = connect(g);
    if (!client) return report_error(client.error());
    int deleted = 0;
    for (const auto& v : rec->vms) {
      for (const auto& vol : v.volumes) {
        if (vol.volume_snapshot.empty() || vol.volume_snapshot.find(' ') != std::string::npos) continue;
        auto st = (*client)->remove(kube::resources::kVolumeSnapshots, v.ns, vol.volume_snapshot);
        if (!st && st.error().code != Errc::kNotFound) {
          return report_error(Error(st.error().code, "deleting VolumeSnapshot " + v.ns + "/" + vol.volume_snapshot + ": " +
                                                         st.error().message + " (the backup was kept)"));
        }
        deleted += st ? 1 : 0;
      }
    }
    std::fprintf(stderr, "deleted %d VolumeSnapshots\n", deleted);
  }
  if (auto st = (*loc)->remove("backups/" + o.name); !st) return report_error(st.error());
  std::printf("backup %s deleted\n", o.name.c_str());
  return kExitOk;
}

int recover_cmd(const GlobalOptions& g, const BackupOptions& o) {
  auto loc = open_existing_location(o.location);
  if (!loc) return report_error(loc.error());
  auto client = connect(g);
  if (!client) return report_error(client.error());
  auto report = backup::recover(*client, **loc);
  for (const auto& l : report.lines) std::printf("%s\n", l.c_str());
  for (const auto& p : report.problems) std::fprintf(stderr, "kvbackup: %s\n", p.c_str());
  std::printf("recover: %d stale journal entries, %d VMs, %d thawed, %d entries of running backups left alone\n",
              report.entries, report.vms, report.thawed, report.live);
  return report.ok() ? kExitOk : kExitFailed;
}

void add_location(CLI::App* cmd, BackupOptions& o) {
  cmd->add_option("--location", o.location, "Backup location directory (default: $KVBACKUP_LOCATION, else ./kvbackup-backups)");
}

}  // namespace

void register_backup(CLI::App& app, GlobalOptions& g, Runner& run) {
  auto o = std::make_shared<BackupOptions>();
  auto* cmd = app.add_subcommand("backup", "Create, list, describe and delete VM backups");
  cmd->require_subcommand(1);

  auto* c = cmd->add_subcommand("create", "Back up VMs: freeze, snapshot every volume, thaw at the cut, save resources and a record");
  c->add_option("name", o->name, "Backup name")->required();
  add_location(c, *o);
  add_scope_options(c, o->scope);
  c->add_option("--rules", o->rules, "builtin (virt-freezer per VM) or custom (--pre-rule/--post-rule)")
      ->check(CLI::IsMember({"builtin", "custom"}));
  c->add_option("--pre-rule", o->pre_rule, "Pre-exec rule: a file, or the name of a Stork Rule in the VMs' namespace");
  c->add_option("--post-rule", o->post_rule, "Post-exec rule: a file, or the name of a Stork Rule");
  c->add_option("--freeze-method", o->freeze_method, "exec (virt-freezer in the launcher pod) or subresource (KubeVirt freeze API)")
      ->check(CLI::IsMember({"exec", "subresource"}));
  c->add_option("--on-no-agent", o->on_no_agent, "VMs without a guest agent: crash-consistent, skip or fail")
      ->check(CLI::IsMember({"crash-consistent", "skip", "fail"}));
  c->add_option("--concurrency", o->concurrency, "VMs backed up at once");
  c->add_option("--freeze-deadline", o->freeze_deadline, "Longest a guest may stay frozen waiting for its snapshots' cut");
  c->add_option("--ready-timeout", o->ready_timeout, "Longest to wait for readyToUse after the cut");
  c->add_option("--consistency-group", o->consistency_group, "none (per VM) or all (freeze every VM, cut, thaw every VM)")
      ->check(CLI::IsMember({"none", "all"}));
  c->add_option("--snapshot-class", o->snapshot_class, "One VolumeSnapshotClass for every volume");
  c->add_option("--snapshot-class-map", o->snapshot_class_map, "STORAGECLASS=VOLUMESNAPSHOTCLASS (repeatable)")->delimiter(',');
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
  del->callback([&run, &g, o] { run = [&g, o] { return remove(g, *o); }; });

  auto* r = app.add_subcommand("recover", "Thaw VMs that a kvbackup process which died left frozen (from the location's journal)");
  add_location(r, *o);
  r->callback([&run, &g, o] { run = [&g, o] { return recover_cmd(g, *o); }; });
}

}  // namespace kvb::cli
