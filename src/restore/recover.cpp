#include "restore/recover.h"

#include "common/sanitize.h"
#include "kube/object.h"
#include "kube/resource.h"
#include "kubevirt/resources.h"
#include "restore/record.h"
#include "restore/runner.h"
#include "restore/transform.h"

#include <boost/json.hpp>

#include <unistd.h>

namespace kvb::restore {
namespace json = boost::json;
namespace res = kube::resources;

namespace {

const kube::ResourceRef* ref_of(const std::string& resource) {
  for (const auto* r : {&res::kSecrets, &res::kConfigMaps, &res::kVolumeSnapshots, &res::kVolumeSnapshotContents,
                        &res::kPersistentVolumeClaims, &kubevirt::kVirtualMachines}) {
    if (r->resource == resource) return r;
  }
  return nullptr;
}

// Removes, newest first, what the restore listed as created — only objects
// that carry its label (a name it listed may belong to someone else by now).
bool roll_back(kube::Client& client, const std::string& restore, VmRestoreRecord& vm, std::vector<std::string>& problems) {
  bool ok_all = true;
  for (auto it = vm.created.rbegin(); it != vm.created.rend(); ++it) {
    const auto* ref = ref_of(it->resource);
    if (!ref || it->removed) continue;
    auto obj = client.get(*ref, it->ns, it->name);
    if (!obj) {
      if (obj.error().code == Errc::kNotFound) it->removed = true;
      else ok_all = false;
      continue;
    }
    if (kube::label_of(*obj, kRestoreLabel) != restore) continue;  // not ours
    auto r = client.remove(*ref, it->ns, it->name);
    if (r || r.error().code == Errc::kNotFound) {
      it->removed = true;
    } else {
      ok_all = false;
      problems.push_back("could not remove " + it->resource + " " + it->ns + "/" + it->name + ": " + sanitize_foreign(r.error().message));
    }
  }
  return ok_all;
}

}  // namespace

RestoreRecovery recover_restores(std::shared_ptr<kube::Client> client, location::Location& loc) {
  RestoreRecovery out;
  if (!loc.exists("restores")) return out;
  auto names = loc.list("restores");
  if (!names) {
    out.problems.push_back(names.error().message);
    return out;
  }
  for (const auto& name : *names) {
    auto rec = load_restore_record(loc, name);
    if (!rec) {
      out.problems.push_back("restore " + printable(name) + ": " + rec.error().message);
      continue;
    }
    if (rec->phase != RestorePhase::kInProgress) continue;
    auto lock = lock_restore(loc, name);
    if (!lock) {
      if (lock.error().code == Errc::kConflict) out.lines.push_back("restore " + name + " is still running: left alone");
      else out.problems.push_back(lock.error().message);
      continue;
    }
    ++out.interrupted;
    bool resume = false;
    for (auto& vm : rec->vms) {
      if (vm.phase != "Pending") continue;
      if (vm.stage >= RestoreStage::kReplacing) {
        resume = true;
        continue;
      }
      std::vector<std::string> problems;
      bool clean = roll_back(*client, name, vm, problems);
      vm.phase = "Failed";
      vm.reason = "interrupted (" + std::string(to_string(vm.stage)) + "); kvbackup recover removed what it had created";
      for (auto& p : problems) vm.problems.push_back(p);
      out.problems.insert(out.problems.end(), problems.begin(), problems.end());
      if (clean) ++out.rolled_back;
      out.lines.push_back("restore " + name + ": rolled back " + vm.ns + "/" + vm.name);
    }
    RestoreRunner runner(client, loc, rec->options);
    lock->reset();  // resume takes it again for itself
    if (resume) {
      auto done = runner.resume(*rec);
      if (!done) {
        out.problems.push_back("restore " + name + ": could not be completed: " + sanitize_foreign(done.error().message));
        continue;
      }
      for (const auto& vm : done->vms) {
        if (vm.phase == "Completed") ++out.completed;
      }
      out.lines.push_back("restore " + name + ": completed, " + std::string(to_string(done->phase)));
    } else {
      size_t failed = 0;
      for (const auto& v : rec->vms) failed += v.phase != "Completed";
      rec->phase = failed == rec->vms.size() ? RestorePhase::kFailed : RestorePhase::kPartiallyFailed;
      rec->error = "interrupted; kvbackup recover rolled it back";
      rec->finished = WallClock::now();
      if (auto st = loc.put(restore_record_path(name), json::serialize(rec->to_json()), true); !st) {
        out.problems.push_back(st.error().message);
      }
    }
  }
  return out;
}

}  // namespace kvb::restore
