// KubeVirt's freeze/thaw paths in the test cluster: virt-freezer in the compute
// container and the freeze/unfreeze/guestosinfo subresources, over the guest
// model in kubevirt.h.
#include "kube/object.h"
#include "testcluster/csi.h"
#include "testcluster/kubevirt.h"
#include "testcluster/qemu_vms.h"

#include <boost/json.hpp>

namespace kvb::testcluster {
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

constexpr const char* kFreezeFailed = "Freezing VMI failed, please make sure guest agent is running and try again";
constexpr const char* kUnfreezeFailed = "Unfreezing VMI failed";
// virt-api's answer when virt-handler's PUT failed (kubecli virtHandlerConn.doRequest, errors.NewInternalError).
constexpr const char* kHandlerFailed = "Internal error occurred: unexpected return code 500 (500 Internal Server Error)";

std::string log_line(const std::string& level, const std::string& msg) {
  json::object o{{"component", "freezer"},
                 {"level", level},
                 {"msg", msg},
                 {"pos", "virt-freezer.go:1"},
                 {"timestamp", format_rfc3339(WallClock::now(), TimePrecision::kMicros)}};
  return json::serialize(o) + "\n";
}

struct FreezerArgs {
  bool freeze = false, unfreeze = false;
  std::string name, ns;
  int64_t unfreeze_timeout = 300;
  std::string error;  // flag parsing error (pflag style)
};

FreezerArgs parse_freezer_args(const std::vector<std::string>& args) {
  FreezerArgs a;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg.rfind("--", 0) != 0 && arg.rfind("-", 0) == 0 && arg.size() > 1) arg = "-" + arg;  // -name works like --name
    if (arg.rfind("--", 0) != 0) {
      continue;  // positional arguments are ignored, as pflag does
    }
    std::string flag = arg.substr(2), value;
    bool has_value = false;
    if (auto eq = flag.find('='); eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      has_value = true;
    }
    auto take = [&]() -> bool {
      if (has_value) return true;
      if (i + 1 >= args.size()) {
        a.error = "flag needs an argument: --" + flag;
        return false;
      }
      value = args[++i];
      return true;
    };
    if (flag == "freeze" || flag == "unfreeze") {
      bool v = !has_value || value == "true" || value == "1";
      if (has_value && value != "true" && value != "false" && value != "1" && value != "0") {
        a.error = "invalid argument \"" + value + "\" for \"--" + flag + "\" flag: strconv.ParseBool: parsing \"" + value +
                  "\": invalid syntax";
        return a;
      }
      (flag == "freeze" ? a.freeze : a.unfreeze) = v;
    } else if (flag == "name") {
      if (!take()) return a;
      a.name = value;
    } else if (flag == "namespace") {
      if (!take()) return a;
      a.ns = value;
    } else if (flag == "unfreezeTimeoutSeconds") {
      if (!take()) return a;
      try {
        size_t used = 0;
        a.unfreeze_timeout = std::stoll(value, &used);
        if (used != value.size()) throw std::invalid_argument(value);
      } catch (const std::exception&) {
        a.error = "invalid argument \"" + value + "\" for \"--unfreezeTimeoutSeconds\" flag: strconv.ParseInt: parsing \"" +
                  value + "\": invalid syntax";
        return a;
      }
    } else {
      a.error = "unknown flag: --" + flag;
      return a;
    }
  }
  return a;
}

}  // namespace

void KubeVirt::set_frozen(Guest& g, bool frozen, const std::string& event_type, const std::string& detail) {
  auto now = WallClock::now();
  g.frozen = frozen;
  set_active(g, !frozen && !g.paused);
  if (frozen) {
    c_.timeline().frozen(g.ns, g.vm, now);
  } else {
    c_.timeline().thawed(g.ns, g.vm, now);
    if (g.auto_thaw) g.auto_thaw->cancel();
    if (g.vss_timer) g.vss_timer->cancel();
  }
  c_.timeline().record(TimelineEvent{now, event_type, g.ns, g.vm, "", "", frozen, detail});
}

void KubeVirt::disconnect_agent(Guest& g, Duration how_long) {
  g.agent_connected = false;
  update_vmi_conditions(g);
  c_.timeline().record(TimelineEvent{WallClock::now(), "AgentDisconnected", g.ns, g.vm, "", "", g.frozen, ""});
  std::string ns = g.ns, vm = g.vm;
  c_.loop().after(how_long, [this, ns, vm] {
    if (Guest* gg = guest(ns, vm)) {
      gg->agent_connected = true;
      update_vmi_conditions(*gg);
      c_.timeline().record(TimelineEvent{WallClock::now(), "AgentConnected", ns, vm, "", "", gg->frozen, ""});
    }
  });
}

void KubeVirt::freeze(Guest& g, int64_t unfreeze_timeout_s, std::function<void(FreezeOutcome)> done) {
  std::string ns = g.ns, vm = g.vm;
  auto fail = [this, ns, vm, done](std::string reason, Duration after) {
    c_.loop().after(after, [this, ns, vm, done, reason] {
      c_.timeline().record(TimelineEvent{WallClock::now(), "FreezeFailed", ns, vm, "", "", false, reason});
      FreezeOutcome o;
      o.exit_code = 1;
      o.log = {reason, kFreezeFailed};
      o.http_status = 500;
      o.http_message = reason;
      done(o);
    });
  };
  if (g.migrating) return fail("VMI is currently migrating; freeze is not possible", 0s);
  if (g.agent == AgentMode::kUnresponsive) {
    return fail("guest agent did not answer guest-fsfreeze-freeze: context deadline exceeded", launcher_freeze_deadline());
  }
  if (g.qemu) return freeze_qemu(g, unfreeze_timeout_s, std::move(done));
  c_.loop().after(g.freeze_latency, [this, ns, vm, unfreeze_timeout_s, done] {
    Guest* gp = guest(ns, vm);
    if (!gp || !gp->agent_connected) {
      c_.timeline().record(TimelineEvent{WallClock::now(), "FreezeFailed", ns, vm, "", "", false, "guest agent went away"});
      FreezeOutcome o;
      o.exit_code = 1;
      o.log = {"guest agent is not connected", kFreezeFailed};
      o.http_status = 500;
      o.http_message = "QEMU guest agent is not connected";
      done(o);
      return;
    }
    Guest& gg = *gp;
    if (!gg.frozen) {
      set_frozen(gg, true, "Freeze", "unfreezeTimeoutSeconds=" + std::to_string(unfreeze_timeout_s));
      if (gg.agent == AgentMode::kVss10s) {
        gg.vss_timer = c_.loop().after(10s, [this, ns, vm] {
          if (Guest* w = guest(ns, vm); w && w->frozen) {
            w->vss_expired = true;
            set_frozen(*w, false, "AutoThaw", "Windows VSS released the freeze after 10 s (fsfreeze is limited up to 10 seconds)");
          }
        });
      }
    }
    if (gg.auto_thaw) gg.auto_thaw->cancel();
    if (unfreeze_timeout_s > 0) {
      gg.auto_thaw = c_.loop().after(std::chrono::seconds(unfreeze_timeout_s), [this, ns, vm] {
        if (Guest* w = guest(ns, vm); w && w->frozen) {
          set_frozen(*w, false, "AutoThaw", "unfreeze timeout expired");
        }
      });
    }
    if (const Fault* f = c_.faults().agent_disconnect(ns, vm)) disconnect_agent(gg, f->duration);
    FreezeOutcome o;
    o.froze = true;
    o.log = {"Operation completed successfully"};
    done(o);
  });
}

void KubeVirt::thaw(Guest& g, std::string why, std::function<void(FreezeOutcome)> done) {
  std::string ns = g.ns, vm = g.vm;
  auto fail = [this, ns, vm](std::string reason) {
    c_.timeline().record(TimelineEvent{WallClock::now(), "ThawFailed", ns, vm, "", "", true, reason});
    FreezeOutcome o;
    o.exit_code = 1;
    o.log = {reason, kUnfreezeFailed};
    o.http_status = 500;
    o.http_message = reason;
    return o;
  };
  if (!g.agent_connected) return done(fail("QEMU guest agent is not connected"));
  if (g.qemu) return thaw_qemu(g, "Thaw", why, std::move(done));  // always asks the real agent
  if (g.vss_expired) {
    g.vss_expired = false;
    return done(fail("fsfreeze is limited up to 10 seconds: the guest thawed itself before the unfreeze; "
                     "retry the backup, or back up while the VM is stopped"));
  }
  if (!g.frozen) {
    FreezeOutcome o;
    o.log = {"Operation completed successfully"};
    return done(o);
  }
  c_.loop().after(g.thaw_latency, [this, ns, vm, why, done] {
    Guest* gp = guest(ns, vm);
    FreezeOutcome o;
    o.log = {"Operation completed successfully"};
    if (gp && gp->frozen) set_frozen(*gp, false, "Thaw", why);
    done(o);
  });
}

void KubeVirt::virt_freezer(Guest* local, const std::vector<std::string>& args,
                            std::function<void(std::string, std::string, int)> done) {
  std::string err = log_line("info", "Starting...");
  FreezerArgs a = parse_freezer_args(args);
  if (!a.error.empty()) return done("", a.error + "\nUsage of /usr/bin/virt-freezer:\n", 2);
  if (!a.freeze && !a.unfreeze) return done("", err + log_line("error", "either --freeze or --unfreeze must be set"), 1);
  if (a.name.empty() || a.ns.empty()) {
    return done("", err + log_line("error", "both --name and --namespace must be provided"), 1);
  }
  if (!local) return done("", err + log_line("error", "Failed to connect launcher"), 1);
  if (local->agent == AgentMode::kNone || !local->agent_connected) {
    return done("", err + log_line("info", "No guest agent, exiting"), 0);
  }
  err += log_line("info", local->agent == AgentMode::kVss10s ? "Guest agent version is 107.0.1" : "Guest agent version is 8.2.2");
  if (local->paused) {
    if (version_ >= std::pair<int, int>{1, 6}) {
      return done("", err + log_line("info", "VM domain not running, no need to freeze/unfreeze"), 0);
    }
    return done("", err + log_line("error", "Failed to get domain: domain is paused") +
                        log_line("error", a.freeze ? kFreezeFailed : kUnfreezeFailed), 1);
  }
  // The launcher socket is the local one; the name/namespace select the domain in it.
  if (a.name != local->vm || a.ns != local->ns) {
    std::string reason = "domain \"" + a.ns + "_" + a.name + "\" not found in this launcher (it runs " + local->ns + "_" +
                         local->vm + ")";
    c_.timeline().record(TimelineEvent{WallClock::now(), a.freeze ? "FreezeFailed" : "ThawFailed", local->ns, local->vm,
                                       "", "", local->frozen, reason});
    return done("", err + log_line("error", reason) + log_line("error", a.freeze ? kFreezeFailed : kUnfreezeFailed), 1);
  }
  auto finish = [err, done](FreezeOutcome o) {
    std::string text = err;
    for (size_t i = 0; i < o.log.size(); ++i) {
      bool last = i + 1 == o.log.size();
      text += log_line(o.exit_code == 0 || !last ? (o.exit_code == 0 ? "info" : "error") : "error", o.log[i]);
    }
    done("", text, o.exit_code);
  };
  if (a.freeze) freeze(*local, a.unfreeze_timeout, finish);  // freeze wins when both are given
  else thaw(*local, "virt-freezer --unfreeze", finish);
}

void KubeVirt::freeze_subresource(const std::string& ns, const std::string& vmi, Duration unfreeze_timeout,
                                  std::function<void(FreezeOutcome)> done) {
  FreezeOutcome o;
  Guest* g = guest(ns, vmi);
  if (!c_.store().find(c_.resource(res::kVirtualMachineInstances), ns, vmi)) {
    o.http_status = 404;
    o.http_message = "virtualmachineinstance.kubevirt.io \"" + vmi + "\" not found";
    return done(o);
  }
  if (!g) {
    o.http_status = 409;  // virt-api lifecycle.go FreezeVMIRequestHandler: Conflict, vmNotRunning
    o.http_message = "Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io \"" + vmi + "\": VM is not running";
    return done(o);
  }
  if (g->agent == AgentMode::kNone || !g->agent_connected) {
    if (const Object* obj = c_.store().find(c_.resource(res::kVirtualMachineInstances), ns, vmi)) {
      c_.record_event(*obj, "Warning", "FreezeError", "Failed to freeze VMI: QEMU guest agent is not connected");
    }
    o.http_status = 500;
    o.http_message = "QEMU guest agent is not connected";
    return done(o);
  }
  if (g->paused) {
    // virt-api only checks the phase (Running); the launcher's agent command on
    // a suspended domain fails in libvirt ("domain is not running"), virt-handler
    // answers 500 and virt-api wraps that status as an internal error.
    o.http_status = 500;
    o.http_message = kHandlerFailed;
    c_.timeline().record(TimelineEvent{WallClock::now(), "FreezeFailed", ns, vmi, "", "", g->frozen, "the domain is paused"});
    return done(o);
  }
  int64_t secs = std::chrono::duration_cast<std::chrono::seconds>(unfreeze_timeout).count();
  freeze(*g, secs, [this, ns, vmi, done](FreezeOutcome r) {
    if (r.exit_code != 0) {
      r.http_status = 500;
      if (const Object* obj = c_.store().find(c_.resource(res::kVirtualMachineInstances), ns, vmi)) {
        c_.record_event(*obj, "Warning", "FreezeError", "Failed to freeze VMI: " + r.http_message);
      }
    }
    done(r);
  });
}

void KubeVirt::unfreeze_subresource(const std::string& ns, const std::string& vmi, std::function<void(FreezeOutcome)> done) {
  FreezeOutcome o;
  Guest* g = guest(ns, vmi);
  if (!c_.store().find(c_.resource(res::kVirtualMachineInstances), ns, vmi)) {
    o.http_status = 404;
    o.http_message = "virtualmachineinstance.kubevirt.io \"" + vmi + "\" not found";
    return done(o);
  }
  if (!g) {
    o.http_status = 409;
    o.http_message = "VMI is not running";
    return done(o);
  }
  if (g->paused) {  // as for freeze: the agent of a suspended domain cannot be reached
    o.http_status = 500;
    o.http_message = kHandlerFailed;
    c_.timeline().record(TimelineEvent{WallClock::now(), "ThawFailed", ns, vmi, "", "", g->frozen, "the domain is paused"});
    return done(o);
  }
  thaw(*g, "unfreeze subresource", [done](FreezeOutcome r) {
    if (r.exit_code != 0) r.http_status = 500;
    done(r);
  });
}

// --- The real guest (guest: qemu): the same outcomes, from the real agent. ---

void KubeVirt::boot_qemu(Guest& g) {
  std::string ns = g.ns, vm = g.vm, uid = g.vmi_uid;
  auto fail = [this, ns, vm](const std::string& why) {
    c_.timeline().record(TimelineEvent{WallClock::now(), "GuestBootFailed", ns, vm, "", "", false, why});
    if (const Object* obj = c_.store().find(c_.resource(res::kVirtualMachineInstances), ns, vm)) {
      c_.record_event(*obj, "Warning", "GuestBootFailed", why);
    }
  };
  if (g.pvcs.empty()) return fail("a qemu guest needs a claim for its disk");
  if (!c_.csi().volume_store().has_claim(ns, g.pvcs.front())) {
    // A DataVolume's claim is bound after the VM started: boot once it is.
    if (++g.boot_waits > 600) return fail("the claim " + g.pvcs.front() + " of the guest's disk was not bound within 60 s");
    c_.loop().after(100ms, [this, ns, vm, uid] {
      if (Guest* gp = guest(ns, vm); gp && gp->vmi_uid == uid) boot_qemu(*gp);
    });
    return;
  }
  auto writable = c_.csi().volume_store().writable_claim_path(ns, g.pvcs.front());  // QEMU writes it
  if (!writable) return fail("the claim " + g.pvcs.front() + " of the guest's disk: " + writable.error().message);
  auto disk = std::filesystem::absolute(*writable);
  c_.qemu().start(ns + "/" + vm, disk, [this, ns, vm, uid, fail](Result<std::chrono::milliseconds> up) {
    Guest* gp = guest(ns, vm);
    if (!gp || gp->vmi_uid != uid) return;  // stopped meanwhile
    if (!up) return fail(up.error().describe());
    gp->agent_connected = true;
    update_vmi_conditions(*gp);
    c_.timeline().record(TimelineEvent{WallClock::now(), "AgentConnected", ns, vm, "", "", gp->frozen,
                                       "real guest agent answered " + std::to_string(up->count()) + " ms after QEMU started"});
  });
}

void KubeVirt::freeze_qemu(Guest& g, int64_t unfreeze_timeout_s, std::function<void(FreezeOutcome)> done) {
  std::string ns = g.ns, vm = g.vm, uid = g.vmi_uid;
  c_.qemu().freeze(ns + "/" + vm, [this, ns, vm, uid, unfreeze_timeout_s, done](Result<guest::FreezeOutcome> r) {
    Guest* gp = guest(ns, vm);
    if (!r || !gp || gp->vmi_uid != uid) {
      // A refused or failed freeze (the client thawed if the outcome was unknown),
      // or the VMI went away (its guest is thawed before QEMU quits).
      std::string reason = r ? std::string("the VMI stopped during the freeze") : r.error().message;
      c_.timeline().record(TimelineEvent{WallClock::now(), "FreezeFailed", ns, vm, "", "", gp && gp->frozen, reason});
      FreezeOutcome o;
      o.exit_code = 1;
      o.log = {reason, kFreezeFailed};
      o.http_status = 500;
      o.http_message = reason;
      return done(o);
    }
    Guest& gg = *gp;
    if (!gg.frozen) {
      set_frozen(gg, true, "Freeze",
                 "unfreezeTimeoutSeconds=" + std::to_string(unfreeze_timeout_s) + " agent froze " +
                     std::to_string(r->filesystems) + " file system(s) in " + std::to_string(r->took.count()) + " ms");
    }
    if (gg.auto_thaw) gg.auto_thaw->cancel();
    if (unfreeze_timeout_s > 0) {
      gg.auto_thaw = c_.loop().after(std::chrono::seconds(unfreeze_timeout_s), [this, ns, vm] {
        if (Guest* w = guest(ns, vm); w && w->frozen) thaw_qemu(*w, "AutoThaw", "unfreeze timeout expired", [](FreezeOutcome) {});
      });
    }
    FreezeOutcome o;
    o.froze = true;
    o.log = {"Operation completed successfully"};
    done(o);
  });
}

void KubeVirt::thaw_qemu(Guest& g, const std::string& event_type, const std::string& why,
                         std::function<void(FreezeOutcome)> done) {
  std::string ns = g.ns, vm = g.vm, uid = g.vmi_uid;
  // The model counts the guest thawed from the moment the thaw is asked for: a
  // cut queued behind the thaw may run after it, so it must not be taken for a
  // frozen cut (the oracle errs towards "not frozen", never the other way).
  const bool was_frozen = g.frozen;
  if (was_frozen) set_frozen(g, false, event_type, why);
  c_.qemu().thaw(ns + "/" + vm, [this, ns, vm, uid, was_frozen, done](Result<int> r) {
    Guest* gp = guest(ns, vm);
    FreezeOutcome o;
    if (!r) {
      // Still frozen as far as anyone knows.
      if (gp && gp->vmi_uid == uid && was_frozen && !gp->frozen) set_frozen(*gp, true, "Freeze", "the thaw failed: " + r.error().message);
      c_.timeline().record(TimelineEvent{WallClock::now(), "ThawFailed", ns, vm, "", "", gp && gp->frozen, r.error().message});
      o.exit_code = 1;
      o.log = {r.error().message, kUnfreezeFailed};
      o.http_status = 500;
      o.http_message = r.error().message;
      return done(o);
    }
    o.log = {"Operation completed successfully"};
    done(o);
  });
}

void KubeVirt::stop_qemu(Guest& g) {
  std::string ns = g.ns, vm = g.vm;
  c_.qemu().stop(ns + "/" + vm, [this, ns, vm](guest::CloseReport r) {
    auto yes = [](bool b) { return b ? std::string("true") : std::string("false"); };
    c_.timeline().record(TimelineEvent{WallClock::now(), "GuestStopped", ns, vm, "", "", false,
                                       "possiblyFrozen=" + yes(r.was_possibly_frozen) + " thawed=" + yes(r.thawed) +
                                           " statusAfterThaw=" + r.status_after_thaw + " quitCleanly=" + yes(r.quit_cleanly) +
                                           " killed=" + yes(r.killed)});
  });
}

void KubeVirt::poll_qemu(Guest& g) {
  if (!g.agent_connected) return;
  std::string ns = g.ns, vm = g.vm, uid = g.vmi_uid;
  c_.qemu().freeze_status(ns + "/" + vm, [this, ns, vm, uid](Result<std::string> r) {
    Guest* gp = guest(ns, vm);
    if (!r || !gp || gp->vmi_uid != uid) return;
    (void)c_.store().mutate(c_.resource(res::kVirtualMachineInstances), ns, vm, [&](Object& o) {
      auto& st = o["status"].as_object();
      if (*r == "frozen") st["fsFreezeStatus"] = "frozen";
      else st.erase("fsFreezeStatus");
    });
  });
}

Result<json::object> KubeVirt::guest_os_info(const std::string& ns, const std::string& vmi) {
  const Object* obj = c_.store().find(c_.resource(res::kVirtualMachineInstances), ns, vmi);
  if (!obj) return Error(Errc::kNotFound, "virtualmachineinstance.kubevirt.io \"" + vmi + "\" not found");
  Guest* g = guest(ns, vmi);
  if (!g) return Error(Errc::kConflict, "VMI is not running");  // 409, as virt-api answers
  if (g->agent == AgentMode::kNone || !g->agent_connected) return Error(Errc::kConflict, "VMI does not have guest agent connected");
  json::value v(*obj);
  json::object info{{"guestAgentVersion", g->agent == AgentMode::kVss10s ? "107.0.1" : "8.2.2"},
                    {"hostname", launcher_hostname(vmi, "")}};
  if (auto* os = kube::object_at(v, {"status", "guestOSInfo"})) info["os"] = *os;
  info["fsFreezeStatus"] = g->frozen ? "frozen" : "thawed";
  return info;
}

}  // namespace kvb::testcluster
