#include "backup/recover.h"

#include "backup/data_copy.h"
#include "backup/freeze_lease.h"
#include "backup/freezer.h"
#include "backup/journal.h"
#include "common/sanitize.h"
#include "common/yaml_json.h"
#include "kube/object.h"
#include "kubevirt/inventory.h"
#include "record/backup_record.h"
#include "record/naming.h"

#include <boost/json.hpp>

namespace kvb::backup {
namespace json = boost::json;

namespace {

// Thaws one VM named by a stale entry; ok when it is confirmed thawed or cannot be frozen any more.
Status thaw_vm(kube::Client& client, Freezer& freezer, const record::JournalVm& v) {
  kubevirt::Scope scope;
  scope.namespaces = {v.ns};
  scope.vm_names = {v.name};
  auto inv = kubevirt::load_inventory(client, scope);
  if (!inv) {
    if (inv.error().code == Errc::kNotFound) return ok();  // the VM is gone: nothing of it is frozen
    return inv.error();
  }
  if (inv->empty() || !inv->front().has_vmi() || !inv->front().running()) return ok();  // not running: not frozen
  const auto& vm = inv->front();
  std::string vmi(kube::name_of(*vm.vmi));
  auto kind = v.method == record::FreezeMethod::kSubresource ? record::FreezeKind::kSubresource : record::FreezeKind::kBuiltinRules;
  auto t = freezer.thaw_verified(v.ns, vmi, vm.pod ? vm.pod_name() : std::string(), kind, false);
  if (!t.ok) return Error(Errc::kInternal, t.reason);
  return ok();
}

void mark_record_failed(location::Location& loc, const std::string& backup, RecoveryReport& report) {
  std::string path = record::backup_record_path(backup);
  if (!loc.exists(path)) return;
  auto text = loc.get(path);
  if (!text) return;
  auto rec = record::parse_backup_record(*text, loc.describe() + "/" + path);
  if (!rec) {
    report.problems.push_back("the record of backup " + backup + " is unreadable: " + rec.error().message);
    return;
  }
  if (rec->phase != record::BackupPhase::kInProgress) return;
  rec->phase = record::BackupPhase::kFailed;
  rec->error = "the kvbackup process died before the backup finished; kvbackup recover thawed its VMs";
  rec->finished = WallClock::now();
  if (auto st = loc.put(path, json::serialize(rec->to_json())); !st) {
    report.problems.push_back("could not mark backup " + backup + " Failed: " + st.error().message);
  }
}

}  // namespace

RecoveryReport recover(std::shared_ptr<kube::Client> client, location::Location& loc, const BackupSpec& timing) {
  RecoveryReport report;
  if (!loc.exists("journal")) return report;
  auto names = loc.list("journal");
  if (!names) {
    report.problems.push_back(names.error().message);
    return report;
  }
  Freezer freezer(rules::cluster_pod_exec(client), kubevirt::cluster_freeze_api(client), timing);
  for (const auto& file : *names) {
    if (!file.ends_with(".json")) continue;
    std::string backup = file.substr(0, file.size() - 5);
    auto lock = lock_journal(loc, backup);
    if (!lock && lock.error().code != Errc::kConflict) {
      report.problems.push_back(lock.error().message);
      continue;
    }
    if (!lock) {
      ++report.live;
      report.lines.push_back("backup " + backup + " is still running: its journal entry is left alone");
      continue;
    }
    ++report.entries;
    std::string origin = loc.describe() + "/journal/" + file;
    auto text = loc.get("journal/" + file);
    auto doc = text ? parse_json(*text, origin) : Result<json::value>(text.error());
    auto entry = doc ? record::JournalEntry::from_json(*doc, origin) : Result<record::JournalEntry>(doc.error());
    if (!entry) {
      report.problems.push_back("journal entry " + file + " is unreadable: " + entry.error().message);
      continue;
    }
    bool all_ok = true;
    for (const auto& v : entry->vms) {
      ++report.vms;
      if (auto st = thaw_vm(*client, freezer, v); !st) {
        all_ok = false;
        report.problems.push_back("could not thaw " + v.ns + "/" + v.name + " (backup " + backup + "): " + sanitize_foreign(st.error().message));
        continue;
      }
      ++report.thawed;
      report.lines.push_back("thawed " + v.ns + "/" + v.name + " (left by backup " + backup + ")");
      if (auto st = release_lease_of_run(*client, v.ns, v.name, entry->uid); !st) {
        report.problems.push_back("could not give back the freeze lease of " + v.ns + "/" + v.name + ": " + st.error().message);
      }
    }
    for (const auto& ns : entry->copy_namespaces) {
      auto removed = remove_copy_leftovers(*client, ns, entry->uid);
      if (!removed) {
        all_ok = false;
        report.problems.push_back("could not remove the temporary copy objects of backup " + backup + " in " + ns + ": " +
                                  sanitize_foreign(removed.error().message));
        continue;
      }
      for (const auto& r : *removed) report.lines.push_back("removed " + r + " (left by backup " + backup + ")");
    }
    if (all_ok) {
      mark_record_failed(loc, backup, report);
      if (auto st = remove_journal_entry(loc, backup); !st) {
        report.problems.push_back("could not remove the journal entry of backup " + backup + ": " + st.error().message);
      }
    }
  }
  return report;
}

}  // namespace kvb::backup
