// kvbackup restore create | list | describe
#include "cli/options.h"
#include "cli/repo_password.h"
#include "cli/stop_signals.h"
#include "location/location.h"
#include "restore/plan.h"
#include "repo/repository.h"
#include "restore/runner.h"

#include <boost/json.hpp>
#include <fmt/format.h>

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
};

// <location>/repository, which `backup create --copy-data` filled; never created here.
Result<std::shared_ptr<repo::Repository>> open_backup_repository(const RestoreOptions& o) {
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
  }
  return out;
}

int create(const GlobalOptions& g, const RestoreOptions& o) {
  StopSignals signals;
  restore::RestoreSpec spec;
  spec.name = o.name;
  spec.backup = o.backup;
  spec.vms = o.vms;
  for (auto [flag, in, out] : {std::tuple{"--namespace-mapping", &o.namespace_mapping, &spec.namespace_mapping},
                               std::tuple{"--rename", &o.rename, &spec.rename},
                               std::tuple{"--storage-class-mapping", &o.storage_class_mapping, &spec.storage_class_mapping}}) {
    auto m = restore::parse_mapping(flag, *in);
    if (!m) return report_error(m.error());
    *out = std::move(*m);
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
    return report_error(Error(Errc::kInvalidArgument, "--upload-proxy-url and --password-file are for a restore from the repository"));
  }
  auto loc = open_existing_location(o.location);
  if (!loc) return report_error(loc.error());
  auto client = connect(g);
  if (!client) return report_error(client.error());
  restore::RestoreRunner runner(*client, **loc, spec, [](const std::string& l) { std::fprintf(stderr, "%s\n", l.c_str()); });
  runner.set_repository_opener([&o] { return open_backup_repository(o); });
  auto rec = runner.run(signals.token());
  if (!rec) return report_error(rec.error());
  if (o.output == "json") {
    std::printf("%s\n", json::serialize(rec->to_json()).c_str());
  } else {
    std::printf("%s\nRestore %s: %s, recorded in %s/%s\n", table(*rec).c_str(), rec->name.c_str(),
                std::string(to_string(rec->phase)).c_str(), (*loc)->describe().c_str(),
                restore::restore_record_path(rec->name).c_str());
  }
  if (signals.received() != 0) return 128 + signals.received();
  return rec->phase == restore::RestorePhase::kCompleted ? kExitOk : kExitFailed;
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
  c->callback([&run, &g, o] { run = [&g, o] { return create(g, *o); }; });

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
