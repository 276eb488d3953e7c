// kvbackup restore create | list | describe, and kvbackup backup verify (restore/verify.h)
#include "common/allocator.h"
#include "cli/options.h"
#include "cli/repo_password.h"
#include "cli/stop_signals.h"
#include "location/location.h"
#include "restore/plan.h"
#include "repo/repository.h"
#include "restore/runner.h"
#include "restore/verify.h"

#include <boost/json.hpp>
#include <fmt/format.h>

#include "common/duration.h"

#include <cstdio>

namespace kvb::cli {
namespace json = boost::json;

namespace {

struct RestoreOptions {
  std::string name, backup, location;
  std::vector<std::string> vms, namespace_mapping, rename, storage_class_mapping;
  std::string existing = "fail";
  std::string run_strategy = "keep";
  bool keep_mac = false;
  bool create_namespace = false;
  bool wait = true;
  std::string output = "table";
  std::string data_source = "auto";
  std::string upload_proxy_url, upload_proxy_ca, password_file;
  unsigned parallel_uploads = 4;
  bool verify = false;
  std::string verify_timeout = "5m";
};

// --verify-timeout: a duration ("90s", "5m").
Result<std::chrono::milliseconds> verify_timeout(const RestoreOptions& o) {
  auto d = parse_duration(o.verify_timeout);
  if (!d || *d <= std::chrono::milliseconds(0)) {
    return Error(Errc::kInvalidArgument, "--verify-timeout \"" + o.verify_timeout + "\": expected a duration such as 90s or 5m");
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(*d);
}

std::string verification_line(const restore::VerificationRecord& v) {
  if (v.result == "Passed") return fmt::format("Passed, guest agent ready after {:.1f} s", v.seconds_to_agent_ready);
  return "Failed: " + v.reason;
}

// <location>/repository, which `backup create --copy-data` filled; never created here.
Result<std::shared_ptr<repo::Repository>> open_backup_repository(const RestoreOptions& o) {
  tune_allocator_for_streaming();  // the uploads stream out of the repository (common/allocator.h)
  std::string where = location::child_location(o.location.empty() ? location::default_location() : o.location, "repository");
  KVB_TRY(auto loc, location::open(where, location::OpenMode::kExisting));
  std::shared_ptr<location::Location> shared(std::move(loc));
  if (!shared->exists("config")) {
    return Error(Errc::kNotFound, "repository " + where + " does not exist: the backups in this location were made without --copy-data");
  }
  KVB_TRY(auto pw, repository_password(o.password_file));
  auto r = repo::Repository::open(shared, pw);
  if (!r) return Error(r.error().code, "repository " + where + ": " + r.error().message);
  return std::shared_ptr<repo::Repository>(std::move(*r));
}

std::string table(const restore::RestoreRecord& rec) {
  std::string out = fmt::format("{:<28}  {:<28}  {:<9}  {:<7}  {}\n", "FROM", "TO", "PHASE", "CLAIMS", "NOTES");
  for (const auto& v : rec.vms) {
    std::string problems = v.reason;
    for (const auto& p : v.problems) problems += (problems.empty() ? "" : "; ") + p;
    size_t bound = 0;
    for (const auto& c : v.claims) bound += c.phase == "Bound";
    out += fmt::format("{:<28}  {:<28}  {:<9}  {:>7}  {}\n", v.source_ns + "/" + v.source_name, v.ns + "/" + v.name, v.phase,
                       fmt::format("{}/{}", bound, v.claims.size()), problems.empty() ? "-" : problems);
  }
  return out;
}

std::string describe(const restore::RestoreRecord& rec) {
  std::string out = fmt::format("Restore:   {}\nBackup:    {}\nPhase:     {}{}\nStarted:   {}\nFinished:  {}\n", rec.name,
                                rec.backup, to_string(rec.phase), rec.error.empty() ? "" : " (" + rec.error + ")",
                                format_rfc3339(rec.started, TimePrecision::kMillis),
                                rec.finished ? format_rfc3339(*rec.finished, TimePrecision::kMillis) : "-");
  for (const auto& v : rec.vms) {
    out += fmt::format("\nVM {}/{} -> {}/{}: {}{}\n", v.source_ns, v.source_name, v.ns, v.name, v.phase,
                       v.reason.empty() ? "" : " (" + v.reason + ")");
    out += fmt::format("  Run strategy: {}\n", v.run_strategy);
    for (const auto& c : v.claims) {
      if (c.data_source == "repository") {
        out += fmt::format("  Volume {}: claim {} ({}, {}, {}) from repository snapshot {} (backed up from claim {}): {} bytes uploaded "
                           "in {} ms, {} attempt(s), SHA-256 {}\n",
                           c.volume, c.claim, c.phase, c.storage_class, c.size, c.repository_snapshot, c.source_claim, c.uploaded_bytes,
                           c.upload_ms, c.upload_attempts, c.sha256.empty() ? "-" : c.sha256);
        continue;
      }
      out += fmt::format("  Volume {}: claim {} ({}, {}, {}) from VolumeSnapshot {} (backed up from claim {})\n", c.volume, c.claim,
                         c.phase, c.storage_class, c.size, c.volume_snapshot, c.source_claim);
    }
    for (const auto& r : v.replaced) out += "  Replaced: " + r + "\n";
    for (const auto& c : v.created) {
      out += fmt::format("  Created:  {} {}{}{}\n", c.resource, c.ns.empty() ? "" : c.ns + "/", c.name, c.removed ? " (removed again)" : "");
    }
    for (const auto& p : v.problems) out += "  Note:     " + p + "\n";
    if (v.verification) {
      out += "  Verified: " + verification_line(*v.verification) +
             (v.verification->ns.empty() ? "" : " (booted in namespace " + v.verification->ns + ", deleted)") + "\n";
      for (const auto& p : v.verification->problems) out += "  Note:     verification: " + p + "\n";
    }
  }
  return out;
}

Result<restore::RestoreSpec> spec_of(const RestoreOptions& o) {
  restore::RestoreSpec spec;
  spec.name = o.name;
  spec.backup = o.backup;
  spec.vms = o.vms;
  for (auto [flag, in, out] : {std::tuple{"--namespace-mapping", &o.namespace_mapping, &spec.namespace_mapping},
                               std::tuple{"--rename", &o.rename, &spec.rename},
                               std::tuple{"--storage-class-mapping", &o.storage_class_mapping, &spec.storage_class_mapping}}) {
    KVB_TRY(*out, restore::parse_mapping(flag, *in));
  }
  spec.existing = o.existing == "replace" ? restore::Existing::kReplace : restore::Existing::kFail;
  spec.run_strategy = o.run_strategy;
  spec.keep_mac = o.keep_mac;
  spec.create_namespaces = o.create_namespace;
  spec.wait = o.wait;
  spec.data_source = o.data_source == "snapshot"     ? restore::DataSource::kSnapshot
                     : o.data_source == "repository" ? restore::DataSource::kRepository
                                                     : restore::DataSource::kAuto;
  spec.upload_proxy_url = o.upload_proxy_url;
  spec.upload_proxy_ca = o.upload_proxy_ca;
  spec.parallel_uploads = o.parallel_uploads;
  if (spec.data_source == restore::DataSource::kSnapshot && !(o.upload_proxy_url.empty() && o.password_file.empty())) {
    return Error(Errc::kInvalidArgument, "--upload-proxy-url and --password-file are for a restore from the repository");
  }
  return spec;
}

int create(const GlobalOptions& g, const RestoreOptions& o) {
  StopSignals signals;
  auto spec = spec_of(o);
  if (!spec) return report_error(spec.error());
  restore::VerifyOptions vopts;
  if (o.verify) {
    auto t = verify_timeout(o);
    if (!t) return report_error(t.error());
    vopts.agent_timeout = *t;
  }
  auto loc = open_existing_location(o.location);
  if (!loc) return report_error(loc.error());
  auto client = connect(g);
  if (!client) return report_error(client.error());
  auto say = [](const std::string& l) { std::fprintf(stderr, "%s\n", l.c_str()); };
  restore::RestoreRunner runner(*client, **loc, *spec, say);
  runner.set_repository_opener([&o] { return open_backup_repository(o); });
  auto rec = runner.run(signals.token());
  if (!rec) return report_error(rec.error());
  bool verified = true;
  if (o.verify) {
    restore::verify_restored_vms(*client, **loc, *rec, vopts, signals.token(), say);
    if (auto st = (*loc)->put(restore::restore_record_path(rec->name), json::serialize(rec->to_json()), true); !st) {
      return report_error(st.error().with_context("recording the verification"));
    }
    for (const auto& v : rec->vms) {
      verified = verified && (!v.verification || (v.verification->result == "Passed" && v.verification->problems.empty()));
    }
  }
  if (o.output == "json") {
    std::printf("%s\n", json::serialize(rec->to_json()).c_str());
  } else {
    std::printf("%s\nRestore %s: %s, recorded in %s/%s\n", table(*rec).c_str(), rec->name.c_str(),
                std::string(to_string(rec->phase)).c_str(), (*loc)->describe().c_str(),
                restore::restore_record_path(rec->name).c_str());
  }
  if (signals.received() != 0) return 128 + signals.received();
  return rec->phase == restore::RestorePhase::kCompleted && verified ? kExitOk : kExitFailed;
}

// kvbackup backup verify NAME: every chosen VM of the backup restored into a
// namespace of its own, booted until its agent connects, deleted; nothing kept.
int verify_backup(const GlobalOptions& g, const RestoreOptions& o) {
  StopSignals signals;
  auto spec = spec_of(o);
  if (!spec) return report_error(spec.error());
  auto t = verify_timeout(o);
  if (!t) return report_error(t.error());
  restore::VerifyOptions vopts;
  vopts.agent_timeout = *t;
  auto loc = open_existing_location(o.location);
  if (!loc) return report_error(loc.error());
  auto client = connect(g);
  if (!client) return report_error(client.error());
  auto results = restore::verify_backup(*client, **loc, *spec, vopts, [&o] { return open_backup_repository(o); }, signals.token(),
                                        [](const std::string& l) { std::fprintf(stderr, "%s\n", l.c_str()); });
  if (!results) return report_error(results.error());
  bool passed = true;
  json::array arr;
  for (const auto& v : *results) {
    passed = passed && v.result == "Passed" && v.problems.empty();  // a copy left behind fails the run
    arr.push_back(restore::verification_json(v));
  }
  if (o.output == "json") {
    std::printf("%s\n", json::serialize(json::object{{"backup", o.backup}, {"vms", arr}}).c_str());
  } else {
    std::printf("%-40s  %-7s  %-12s  %s\n", "VM", "RESULT", "AGENT READY", "REASON");
    for (const auto& v : *results) {
      std::string problems = v.reason;
      for (const auto& p : v.problems) problems += (problems.empty() ? "" : "; ") + p;
      std::printf("%-40s  %-7s  %-12s  %s\n", v.vm.c_str(), v.result.c_str(),
                  v.seconds_to_agent_ready < 0 ? "-" : fmt::format("{:.1f} s", v.seconds_to_agent_ready).c_str(),
                  problems.empty() ? "-" : problems.c_str());
    }
  }
  if (signals.received() != 0) return 128 + signals.received();
  return passed ? kExitOk : kExitFailed;
}

int list(const RestoreOptions& o) {
  auto loc = open_existing_location(o.location);
  if (!loc) return report_error(loc.error());
  auto names = (*loc)->list("restores");
  if (!names) return report_error(names.error());
  std::printf("%-30s  %-24s  %-15s  %s\n", "NAME", "BACKUP", "PHASE", "VMS");
  for (const auto& n : *names) {
    auto rec = restore::load_restore_record(**loc, n);
    if (!rec) {
      std::printf("%-30s  unreadable: %s\n", n.c_str(), rec.error().message.c_str());
      continue;
    }
    std::printf("%-30s  %-24s  %-15s  %zu\n", n.c_str(), rec->backup.c_str(), std::string(to_string(rec->phase)).c_str(),
                rec->vms.size());
  }
  return kExitOk;
}

int show(const RestoreOptions& o) {
  auto loc = open_existing_location(o.location);
  if (!loc) return report_error(loc.error());
  auto rec = restore::load_restore_record(**loc, o.name);
  if (!rec) return report_error(rec.error());
  if (o.output == "json") std::printf("%s\n", json::serialize(rec->to_json()).c_str());
  else std::printf("%s", describe(*rec).c_str());
  return kExitOk;
}

}  // namespace

void register_restore(CLI::App& app, GlobalOptions& g, CommandAction& run) {
  auto o = std::make_shared<RestoreOptions>();
  auto* cmd = app.add_subcommand("restore", "Restore VMs from a backup: claims from its snapshots, the VM with its configuration");
  cmd->require_subcommand(1);
  auto* c = cmd->add_subcommand("create", "Restore VMs of a backup, in place or into other namespaces and names");
  c->add_option("name", o->name, "Restore name")->required();
  c->add_option("--from-backup", o->backup, "The backup to restore from")->required();
  c->add_option("--location", o->location, "Backup location directory (default: $KVBACKUP_LOCATION, else ./kvbackup-backups)");
  c->add_option("--vm", o->vms, "Only these VMs of the backup (NS/NAME or NAME; repeatable)");
  c->add_option("--namespace-mapping", o->namespace_mapping, "OLD:NEW namespace (repeatable)");
  c->add_option("--rename", o->rename, "OLD:NEW VM name, OLD as NAME or NS/NAME (repeatable)");
  c->add_option("--storage-class-mapping", o->storage_class_mapping, "OLD:NEW storage class of the restored claims (repeatable)");
  c->add_option("--existing", o->existing, "A VM in the way: fail, or replace it once the restored claims are bound")
      ->check(CLI::IsMember({"fail", "replace"}));
  c->add_option("--run-strategy", o->run_strategy, "keep (the backed-up one), Halted or Always")
      ->check(CLI::IsMember({"keep", "Halted", "Always"}));
  c->add_flag("--keep-mac", o->keep_mac, "Keep MAC addresses and firmware UUID even for a copy beside the original");
  c->add_flag("--create-namespace", o->create_namespace, "Create target namespaces that do not exist");
  c->add_flag("--wait,!--no-wait", o->wait, "Wait until restored VMs that should run are Running (default)");
  c->add_option("-o,--output", o->output, "table or json")->check(CLI::IsMember({"table", "json"}));
  c->add_option("--data-source", o->data_source,
                "Where the bytes come from: snapshot (the backup's VolumeSnapshots), repository (the --copy-data copy, "
                "through CDI upload), or auto: the snapshots when they exist and are ready, else the repository (default)")
      ->check(CLI::IsMember({"auto", "snapshot", "repository"}));
  c->add_option("--upload-proxy-url", o->upload_proxy_url, "CDI upload proxy (default: CDIConfig status.uploadProxyURL)");
  c->add_option("--upload-proxy-ca", o->upload_proxy_ca, "PEM file with the CA of the CDI upload proxy (default: the system's)");
  c->add_option("--parallel-uploads", o->parallel_uploads, "Volumes uploaded at once (default 4)")->check(CLI::Range(1, 64));
  c->add_option("--password-file", o->password_file, "Repository password (else $KVBACKUP_REPO_PASSWORD, else a prompt)");
  auto* verify_flag = c->add_flag("--verify", o->verify,
              "After the restore, boot a copy of each restored VM in an isolated namespace (no network, MACs removed) until its "
              "guest agent connects, record the time, then delete the copy");
  c->add_option("--verify-timeout", o->verify_timeout, "Longest to wait for a verification copy's guest agent (default 5m)")
      ->needs(verify_flag);
  c->callback([&run, &g, o] { run = [&g, o] { return create(g, *o); }; });

  // backup verify: registered here, beside restore create, whose options it shares.
  if (auto* backup = app.get_subcommand("backup")) {
    auto vo = std::make_shared<RestoreOptions>();
    auto* v = backup->add_subcommand("verify",
                                     "Prove a backup boots: restore each VM into a temporary isolated namespace, boot it until its "
                                     "guest agent connects, report, delete everything");
    v->add_option("name", vo->backup, "Backup name")->required();
    v->add_option("--location", vo->location, "Backup location directory (default: $KVBACKUP_LOCATION, else ./kvbackup-backups)");
    v->add_option("--vm", vo->vms, "Only these VMs of the backup (NS/NAME or NAME; repeatable)");
    v->add_option("--storage-class-mapping", vo->storage_class_mapping, "OLD:NEW storage class of the restored claims (repeatable)");
    v->add_option("--data-source", vo->data_source, "auto (default), snapshot or repository, as for restore create")
        ->check(CLI::IsMember({"auto", "snapshot", "repository"}));
    v->add_option("--upload-proxy-url", vo->upload_proxy_url, "CDI upload proxy (default: CDIConfig status.uploadProxyURL)");
    v->add_option("--upload-proxy-ca", vo->upload_proxy_ca, "PEM file with the CA of the CDI upload proxy (default: the system's)");
    v->add_option("--password-file", vo->password_file, "Repository password (else $KVBACKUP_REPO_PASSWORD, else a prompt)");
    v->add_option("--verify-timeout", vo->verify_timeout, "Longest to wait for a VM's guest agent (default 5m)");
    v->add_option("-o,--output", vo->output, "table or json")->check(CLI::IsMember({"table", "json"}));
    v->callback([&run, &g, vo] { run = [&g, vo] { return verify_backup(g, *vo); }; });
  }

  auto* l = cmd->add_subcommand("list", "List the restores in a location");
  l->add_option("--location", o->location, "Backup location directory");
  l->callback([&run, o] { run = [o] { return list(*o); }; });

  auto* d = cmd->add_subcommand("describe", "Show a restore's record");
  d->add_option("name", o->name, "Restore name")->required();
  d->add_option("--location", o->location, "Backup location directory");
  d->add_option("-o,--output", o->output, "table or json")->check(CLI::IsMember({"table", "json"}));
  d->callback([&run, o] { run = [o] { return show(*o); }; });
}

}  // namespace kvb::cli
