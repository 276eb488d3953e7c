#include "restore/verify.h"

#include "common/doc_reader.h"
#include "common/random.h"
#include "common/sanitize.h"
#include "common/yaml_json.h"
#include "kube/object.h"
#include "kube/resource.h"
#include "kube/watch.h"
#include "kubevirt/cdi_upload.h"
#include "kubevirt/resources.h"
#include "restore/plan.h"
#include "restore/runner.h"
#include "restore/transform.h"

#include <boost/json.hpp>
#include <fmt/format.h>

#include <set>

namespace kvb::restore {
namespace json = boost::json;
namespace res = kube::resources;

namespace {

using Clock = std::chrono::steady_clock;

// verify/<id>.json: what a verification may have created, written before it creates anything.
struct Journal {
  std::string id, ns, purpose, restore;  // restore: backup verify's restore record, "" for restore --verify

  json::object to_json() const {
    return json::object{{"kind", "VerifyJournal"}, {"id", id}, {"namespace", ns}, {"purpose", purpose}, {"restore", restore}};
  }
  static Result<Journal> from_json(const json::value& v, const std::string& origin) {
    DocReader r(v, origin, "");
    if (!v.is_object()) return r.error_here("a verify journal entry must be a JSON object");
    Journal j;
    KVB_TRY(j.id, r.required_str("id"));
    KVB_TRY(j.ns, r.required_str("namespace"));
    KVB_TRY(j.purpose, r.str("purpose"));
    KVB_TRY(j.restore, r.str("restore"));
    return j;
  }
};

std::string journal_path(const std::string& id) { return "verify/" + id + ".json"; }
std::string lock_name(const std::string& id) { return "journal/verify-" + id + ".lock"; }

std::string seconds_text(std::chrono::milliseconds d) { return fmt::format("{:.1f}s", static_cast<double>(d.count()) / 1000.0); }

bool agent_connected(const json::object& vmi) {
  if (const auto* conds = kube::array_at(vmi, {"status", "conditions"})) {
    for (const auto& c : *conds) {
      if (kube::str_at(c, {"type"}) == "AgentConnected" && kube::str_at(c, {"status"}) == "True") return true;
    }
  }
  return false;
}

// Deletes what a verification created (its namespace, waited until gone, then
// the cluster-scoped objects its restore listed) and removes its restore
// record; true when nothing is left.
bool clean_up(kube::Client& client, std::shared_ptr<kube::Client> shared, location::Location& loc, const Journal& j,
              std::chrono::milliseconds timeout, std::vector<std::string>& problems) {
  bool clean = true;
  // The namespace first: its VolumeSnapshots go before the contents they are bound to.
  auto ns = client.get(res::kNamespaces, "", j.ns);
  if (ns && kube::label_of(*ns, kVerifyLabel) == j.id) {
    auto r = client.remove(res::kNamespaces, "", j.ns);
    if (!r && r.error().code != Errc::kNotFound) {
      problems.push_back("could not delete namespace " + j.ns + ": " + sanitize_foreign(r.error().message));
      clean = false;
    }
    auto gone = kube::wait_for_object(shared, res::kNamespaces, "", j.ns, [](const json::object* o) { return o == nullptr; },
                                      timeout);
    if (!gone) {
      problems.push_back("namespace " + j.ns + " was not gone within " + seconds_text(timeout) + ": " + gone.error().message);
      clean = false;
    }
  } else if (!ns && ns.error().code != Errc::kNotFound) {
    problems.push_back("namespace " + j.ns + ": " + sanitize_foreign(ns.error().message));
    clean = false;
  }
  // The cluster-scoped VolumeSnapshotContents backup verify's restore imported
  // (Retain: the storage snapshots stay, they are the backup's).
  if (!j.restore.empty() && loc.exists(restore_record_path(j.restore))) {
    auto rec = load_restore_record(loc, j.restore);
    if (!rec) {
      problems.push_back("restore record " + j.restore + ": " + rec.error().message);
      clean = false;
    } else {
      for (const auto& vm : rec->vms) {
        for (const auto& c : vm.created) {
          if (!c.ns.empty() || c.resource != res::kVolumeSnapshotContents.resource) continue;
          auto obj = client.get(res::kVolumeSnapshotContents, "", c.name);
          if (!obj) {
            if (obj.error().code != Errc::kNotFound) clean = false;
            continue;
          }
          if (kube::label_of(*obj, kRestoreLabel) != j.restore) continue;  // not ours
          auto r = client.remove(res::kVolumeSnapshotContents, "", c.name);
          if (!r && r.error().code != Errc::kNotFound) {
            problems.push_back("could not delete VolumeSnapshotContent " + c.name + ": " + sanitize_foreign(r.error().message));
            clean = false;
          }
        }
      }
    }
  }
  if (clean && !j.restore.empty()) {
    if (auto st = loc.remove("restores/" + j.restore); !st) {
      problems.push_back(st.error().message);
      clean = false;
    }
  }
  return clean;
}

// One verification: its journal entry, run lock and namespace; cleanup on every path.
class Session {
 public:
  Session(std::shared_ptr<kube::Client> client, location::Location& loc, const VerifyOptions& opts)
      : client_(std::move(client)), loc_(loc), opts_(opts) {}
  ~Session() { (void)finish(); }

  Status begin(const std::string& purpose) {
    j_.id = random_hex(10);
    j_.ns = "kvb-verify-" + j_.id;
    j_.purpose = purpose;
    KVB_TRY(lock_, loc_.lock_path(lock_name(j_.id), {}));
    KVB_CHECK(save());
    json::object ns{{"apiVersion", "v1"},
                    {"kind", "Namespace"},
                    {"metadata", json::object{{"name", j_.ns}, {"labels", json::object{{kVerifyLabel, j_.id}}}}}};
    auto r = client_->create(res::kNamespaces, "", ns);
    if (!r) return r.error().with_context("creating the verification namespace " + j_.ns);
    return ok();
  }
  Status set_restore(const std::string& name) {
    j_.restore = name;
    return save();
  }
  // Cleanup, once; the problems it met go into `problems`. The journal entry
  // stays when something is left (recover tries again).
  bool finish(std::vector<std::string>* problems = nullptr) {
    if (done_ || !lock_) return clean_;
    done_ = true;
    std::vector<std::string> p;
    clean_ = clean_up(*client_, client_, loc_, j_, opts_.cleanup_timeout, p);
    if (clean_) {
      if (auto st = loc_.remove(journal_path(j_.id)); !st) p.push_back(st.error().message);
    }
    lock_.reset();
    if (problems) problems->insert(problems->end(), p.begin(), p.end());
    return clean_;
  }
  const std::string& ns() const { return j_.ns; }
  const std::string& id() const { return j_.id; }

 private:
  Status save() { return loc_.put(journal_path(j_.id), json::serialize(j_.to_json())); }

  std::shared_ptr<kube::Client> client_;
  location::Location& loc_;
  VerifyOptions opts_;
  Journal j_;
  std::unique_ptr<location::Lock> lock_;
  bool done_ = false, clean_ = false;
};

// Until the VMI of ns/name reports AgentConnected, fails, or the time since
// `created` passes the timeout.
void wait_for_agent(std::shared_ptr<kube::Client> client, const std::string& ns, const std::string& name, Clock::time_point created,
                    const VerifyOptions& opts, std::stop_token stop, VerificationRecord& out) {
  std::string phase;
  bool failed = false;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(created + opts.agent_timeout - Clock::now());
  auto r = kube::wait_for_object(
      client, kubevirt::kVirtualMachineInstances, ns, name,
      [&](const json::object* o) {
        if (!o) return false;
        phase = std::string(kube::str_at(*o, {"status", "phase"}));
        failed = phase == "Failed" || phase == "Succeeded";
        return failed || agent_connected(*o);
      },
      std::max(left, std::chrono::milliseconds(1)), stop);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - created);
  if (r && !failed) {
    out.result = "Passed";
    out.seconds_to_agent_ready = static_cast<double>(took.count()) / 1000.0;
    return;
  }
  out.result = "Failed";
  if (r) {
    out.reason = "the VM stopped before its guest agent connected (VMI phase " + phase + ")";
  } else if (stop.stop_requested()) {
    out.reason = "interrupted after " + seconds_text(took) + ", before the guest agent connected";
  } else {
    out.reason = "the guest agent did not connect within " + seconds_text(opts.agent_timeout) +
                 (phase.empty() ? std::string(" (no VirtualMachineInstance started)") : " (VMI phase " + phase + ")");
  }
}

// A CDI clone of ns/claim into the verification namespace (same name), bound at once.
Status clone_claim(kube::Client& client, const std::string& ns, const std::string& claim, const std::string& into,
                   const std::string& id) {
  auto pvc = client.get(res::kPersistentVolumeClaims, ns, claim);
  if (!pvc) return pvc.error().with_context("reading the restored claim " + ns + "/" + claim);
  json::object storage{{"resources", json::object{{"requests", json::object{
                                                     {"storage", kube::str_at(*pvc, {"spec", "resources", "requests", "storage"})}}}}}};
  if (auto sc = kube::str_at(*pvc, {"spec", "storageClassName"}); !sc.empty()) storage["storageClassName"] = sc;
  if (auto vm = kube::str_at(*pvc, {"spec", "volumeMode"}); !vm.empty()) storage["volumeMode"] = vm;
  if (const auto* modes = kube::array_at(*pvc, {"spec", "accessModes"})) storage["accessModes"] = *modes;
  json::object dv{{"apiVersion", "cdi.kubevirt.io/v1beta1"},
                  {"kind", "DataVolume"},
                  {"metadata", json::object{{"name", claim},
                                            {"namespace", into},
                                            {"labels", json::object{{kVerifyLabel, id}}},
                                            {"annotations", json::object{{kubevirt::kAnnBindImmediate, "true"}}}}},
                  {"spec", json::object{{"source", json::object{{"pvc", json::object{{"namespace", ns}, {"name", claim}}}}},
                                        {"storage", storage}}}};
  auto r = client.create(kubevirt::kDataVolumes, into, dv);
  if (!r) return r.error().with_context("creating the clone of " + ns + "/" + claim);
  return ok();
}

// The Secrets and ConfigMaps the backed-up VM referenced (cloud-init, SSH
// keys), from the backup, into the verification namespace: without them the
// copy would not start.
Status copy_configs(kube::Client& client, location::Location& loc, const RestoreRecord& rec, const VmRestoreRecord& vm,
                    const std::string& into, const std::string& id) {
  auto sources = cluster_sources(client, loc);
  KVB_TRY(auto backup, sources->backup(rec.backup));
  for (const auto& v : backup.vms) {
    if (v.ns != vm.source_ns || v.name != vm.source_name) continue;
    for (const auto& file : v.resources) {
      const kube::ResourceRef* ref = nullptr;
      if (file.find("/" + res::kSecrets.qualified_name() + "/") != std::string::npos) ref = &res::kSecrets;
      if (file.find("/" + res::kConfigMaps.qualified_name() + "/") != std::string::npos) ref = &res::kConfigMaps;
      if (!ref) continue;
      KVB_TRY(auto saved, sources->saved(rec.backup, file));
      json::object o = restored_config(saved, into);
      if (!o["metadata"].is_object()) o["metadata"] = json::object();
      auto& meta = o["metadata"].as_object();
      if (!meta.contains("labels") || !meta["labels"].is_object()) meta["labels"] = json::object();
      meta["labels"].as_object()[kVerifyLabel] = id;
      auto r = client.create(*ref, into, o);
      if (!r) return r.error().with_context("copying " + ref->resource + " " + std::string(kube::name_of(o)));
    }
  }
  return ok();
}

VerificationRecord verify_one_restored(std::shared_ptr<kube::Client> client, location::Location& loc, const RestoreRecord& rec,
                                       const VmRestoreRecord& vm, const VerifyOptions& opts, std::stop_token stop,
                                       const VerifyProgress& say) {
  VerificationRecord out;
  out.vm = vm.ns + "/" + vm.name;
  out.result = "Failed";
  Session s(client, loc, opts);
  auto fail = [&](const std::string& why) {
    out.reason = sanitize_foreign(why);
    s.finish(&out.problems);
    return out;
  };
  if (auto st = s.begin("restore " + rec.name + " VM " + out.vm); !st) return fail(st.error().message);
  out.ns = s.ns();
  say(out.vm + ": verifying in namespace " + s.ns());
  auto live = client->get(kubevirt::kVirtualMachines, vm.ns, vm.name);
  if (!live) return fail("reading the restored VM: " + live.error().message);
  VmRewrite w;
  w.ns = s.ns();
  w.name = vm.name;
  w.run_strategy = "Always";
  w.strip_identity = true;
  w.isolate = true;
  w.restore = rec.name;
  w.restored_from = rec.backup + "/" + vm.source_ns + "/" + vm.source_name;
  for (const auto& c : vm.claims) {
    if (auto st = clone_claim(*client, vm.ns, c.claim, s.ns(), s.id()); !st) return fail(st.error().message);
    w.claim_for_volume[c.volume] = c.claim;
  }
  for (const auto& c : vm.claims) {
    std::string failed;
    auto r = kube::wait_for_object(
        client, kubevirt::kDataVolumes, s.ns(), c.claim,
        [&](const json::object* o) {
          if (!o) return false;
          auto phase = kube::str_at(*o, {"status", "phase"});
          if (phase == "Failed") failed = "the clone of " + vm.ns + "/" + c.claim + " failed";
          return phase == "Succeeded" || !failed.empty();
        },
        opts.clone_timeout, stop);
    if (!r) return fail("waiting for the clone of " + vm.ns + "/" + c.claim + ": " + r.error().message);
    if (!failed.empty()) return fail(failed);
  }
  if (auto st = copy_configs(*client, loc, rec, vm, s.ns(), s.id()); !st) return fail(st.error().message);
  json::object copy = restored_vm(*live, w);
  auto& labels = copy["metadata"].as_object()["labels"].as_object();
  labels.erase(kRestoreLabel);
  labels[kVerifyLabel] = s.id();
  auto created = Clock::now();
  auto c = client->create(kubevirt::kVirtualMachines, s.ns(), copy);
  if (!c) return fail("creating the verification copy: " + c.error().message);
  wait_for_agent(client, s.ns(), vm.name, created, opts, stop, out);
  s.finish(&out.problems);
  return out;
}

}  // namespace

void verify_restored_vms(std::shared_ptr<kube::Client> client, location::Location& loc, RestoreRecord& rec,
                         const VerifyOptions& opts, std::stop_token stop, VerifyProgress progress) {
  auto say = [&](const std::string& l) {
    if (progress) progress(sanitize_foreign(l));
  };
  for (auto& vm : rec.vms) {
    if (vm.phase != "Completed") continue;
    if (stop.stop_requested()) {
      vm.verification = VerificationRecord{vm.ns + "/" + vm.name, "Failed", -1, "interrupted before it started", "", {}};
      continue;
    }
    vm.verification = verify_one_restored(client, loc, rec, vm, opts, stop, say);
    const auto& v = *vm.verification;
    say(v.vm + ": verification " + v.result +
        (v.result == "Passed" ? fmt::format(", guest agent ready after {:.1f}s", v.seconds_to_agent_ready) : ": " + v.reason));
  }
}

Result<std::vector<VerificationRecord>> verify_backup(std::shared_ptr<kube::Client> client, location::Location& loc,
                                                      const RestoreSpec& base, const VerifyOptions& opts,
                                                      RepositoryOpenerFn open_repository, std::stop_token stop,
                                                      VerifyProgress progress) {
  auto say = [&](const std::string& l) {
    if (progress) progress(sanitize_foreign(l));
  };
  auto sources = cluster_sources(*client, loc);
  KVB_TRY(auto backup, sources->backup(base.backup));
  std::vector<std::string> chosen;
  const std::set<std::string> filter(base.vms.begin(), base.vms.end());
  std::set<std::string> unmatched = filter;
  for (const auto& v : backup.vms) {
    bool named = filter.count(v.name) || filter.count(v.ns + "/" + v.name);
    if (!filter.empty() && !named) continue;
    unmatched.erase(v.name);
    unmatched.erase(v.ns + "/" + v.name);
    if (v.phase != record::VmPhase::kCompleted && v.phase != record::VmPhase::kPartiallyFailed) {
      if (named) {
        return Error(Errc::kInvalidArgument, "VM " + v.ns + "/" + v.name + " is " + std::string(to_string(v.phase)) + " in backup " +
                                                 backup.name + ": nothing to verify");
      }
      continue;
    }
    chosen.push_back(v.ns + "/" + v.name);
  }
  if (!unmatched.empty()) return Error(Errc::kNotFound, "VM " + *unmatched.begin() + " is not in backup " + backup.name);
  if (chosen.empty()) return Error(Errc::kInvalidArgument, "backup " + backup.name + " has no VM to verify");
  std::vector<VerificationRecord> out;
  for (const auto& key : chosen) {
    VerificationRecord v;
    v.vm = key;
    v.result = "Failed";
    if (stop.stop_requested()) {
      v.reason = "interrupted before it started";
      out.push_back(v);
      continue;
    }
    Session s(client, loc, opts);
    auto fail = [&](const std::string& why) {
      v.reason = sanitize_foreign(why);
      s.finish(&v.problems);
      out.push_back(v);
    };
    if (auto st = s.begin("backup " + backup.name + " VM " + key); !st) {
      fail(st.error().message);
      continue;
    }
    v.ns = s.ns();
    say(key + ": restoring into namespace " + s.ns());
    RestoreSpec spec = base;
    spec.name = "verify-" + s.id();
    spec.vms = {key};
    spec.namespace_mapping = {{key.substr(0, key.find('/')), s.ns()}};
    spec.rename.clear();
    spec.existing = Existing::kFail;
    spec.run_strategy = "Always";
    spec.create_namespaces = false;
    spec.wait = false;
    spec.isolate = true;
    if (auto st = s.set_restore(spec.name); !st) {
      fail(st.error().message);
      continue;
    }
    RestoreRunner runner(client, loc, spec, say);
    if (open_repository) runner.set_repository_opener(open_repository);
    auto rec = runner.run(stop);
    auto created = Clock::now();
    if (!rec) {
      fail("the restore was refused: " + rec.error().message);
      continue;
    }
    if (rec->vms.empty() || rec->vms[0].phase != "Completed") {
      fail("the restore failed: " + (rec->vms.empty() ? rec->error : rec->vms[0].reason));
      continue;
    }
    wait_for_agent(client, s.ns(), rec->vms[0].name, created, opts, stop, v);
    s.finish(&v.problems);
    say(key + ": verification " + v.result +
        (v.result == "Passed" ? fmt::format(", guest agent ready after {:.1f}s", v.seconds_to_agent_ready) : ": " + v.reason));
    out.push_back(v);
  }
  return out;
}

VerifyRecovery recover_verifications(std::shared_ptr<kube::Client> client, location::Location& loc) {
  VerifyRecovery out;
  if (!loc.exists("verify")) return out;
  auto names = loc.list("verify");
  if (!names) {
    out.problems.push_back(names.error().message);
    return out;
  }
  for (const auto& file : *names) {
    if (!file.ends_with(".json")) continue;
    std::string id = file.substr(0, file.size() - 5);
    auto lock = loc.lock_path(lock_name(id), {});
    if (!lock) {
      if (lock.error().code == Errc::kConflict) out.lines.push_back("verification " + printable(id) + " is still running: left alone");
      else out.problems.push_back(lock.error().message);
      continue;
    }
    std::string origin = loc.describe() + "/" + journal_path(id);
    auto text = loc.get(journal_path(id));
    auto doc = text ? parse_json(*text, origin) : Result<json::value>(text.error());
    auto j = doc ? Journal::from_json(*doc, origin) : Result<Journal>(doc.error());
    if (!j) {
      out.problems.push_back("verify journal entry " + printable(file) + " is unreadable: " + j.error().message);
      continue;
    }
    std::vector<std::string> problems;
    if (clean_up(*client, client, loc, *j, std::chrono::minutes(5), problems)) {
      if (auto st = loc.remove(journal_path(id)); !st) problems.push_back(st.error().message);
      ++out.cleaned;
      out.lines.push_back("verification " + j->id + " (" + j->purpose + "): removed namespace " + j->ns);
    }
    out.problems.insert(out.problems.end(), problems.begin(), problems.end());
  }
  return out;
}

}  // namespace kvb::restore
