#include "backup/freeze_lease.h"

#include "common/time.h"
#include "kube/object.h"
#include "record/naming.h"

#include <boost/json.hpp>

#include <condition_variable>
#include <mutex>
#include <unistd.h>

namespace kvb::backup {
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

std::string HeldLease::describe() const {
  std::string s = "lease " + ns + "/" + name;
  if (!waited_for.empty()) s += " (waited " + std::to_string(static_cast<long>(waited_ms)) + " ms for " + waited_for + ")";
  return s;
}

std::string lease_holder(const std::string& backup, const std::string& run_uid) {
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  return backup + "/" + run_uid + "@" + host + "/" + std::to_string(::getpid());
}

FreezeLeases::FreezeLeases(std::shared_ptr<kube::Client> client, std::string holder, std::chrono::seconds duration)
    : client_(std::move(client)), holder_(std::move(holder)), duration_(duration) {}

namespace {

std::string micro_time(WallTime t) { return format_rfc3339(t, TimePrecision::kMicros); }

json::object lease_spec(const std::string& holder, std::chrono::seconds duration, int64_t transitions) {
  auto now = micro_time(WallClock::now());
  return json::object{{"holderIdentity", holder},
                      {"leaseDurationSeconds", duration.count()},
                      {"acquireTime", now},
                      {"renewTime", now},
                      {"leaseTransitions", transitions}};
}

bool expired(const json::object& lease) {
  auto renew = parse_rfc3339(kube::str_at(lease, {"spec", "renewTime"}));
  auto secs = kube::int_at(lease, {"spec", "leaseDurationSeconds"});
  if (!renew || !secs) return true;  // a lease nobody renews is nobody's
  return *renew + std::chrono::seconds(*secs) < WallClock::now();
}

}  // namespace

Result<HeldLease> FreezeLeases::acquire(const std::string& ns, const std::string& vm, std::chrono::milliseconds wait,
                                        std::stop_token stop) {
  HeldLease held{ns, record::freeze_lease_name(vm), "", "", 0};
  auto t0 = Clock::now();
  auto give_up = t0 + wait;
  auto backoff = std::chrono::milliseconds(100);
  kube::CallOptions o;
  o.repeatable = true;  // a named create: AlreadyExists after a lost answer is checked below
  for (;;) {
    json::object lease{{"apiVersion", "coordination.k8s.io/v1"},
                       {"kind", "Lease"},
                       {"metadata", json::object{{"name", held.name},
                                                 {"namespace", ns},
                                                 {"labels", json::object{{record::kVmLabel, record::label_value(vm)}}}}},
                       {"spec", lease_spec(holder_, duration_, 0)}};
    auto created = client_->create(kube::resources::kLeases, ns, lease, o);
    if (created) {
      held.resource_version = std::string(kube::str_at(*created, {"metadata", "resourceVersion"}));
      break;
    }
    if (created.error().code != Errc::kAlreadyExists) return created.error().with_context("taking freeze lease " + ns + "/" + held.name);
    auto cur = client_->get(kube::resources::kLeases, ns, held.name, o);
    if (!cur) {
      if (cur.error().code == Errc::kNotFound) continue;  // released meanwhile
      return cur.error().with_context("reading freeze lease " + ns + "/" + held.name);
    }
    std::string owner(kube::str_at(*cur, {"spec", "holderIdentity"}));
    if (owner == holder_) {  // our own create, answered late
      held.resource_version = std::string(kube::str_at(*cur, {"metadata", "resourceVersion"}));
      break;
    }
    if (expired(*cur)) {
      json::object taken = *cur;
      auto transitions = kube::int_at(*cur, {"spec", "leaseTransitions"}).value_or(0);
      taken["spec"] = lease_spec(holder_, duration_, transitions + 1);
      auto up = client_->update(kube::resources::kLeases, ns, taken, o);  // resourceVersion: a precondition
      if (up) {
        held.resource_version = std::string(kube::str_at(*up, {"metadata", "resourceVersion"}));
        held.waited_for = owner + " (expired)";
        break;
      }
      if (up.error().code != Errc::kConflict && up.error().code != Errc::kNotFound) {
        return up.error().with_context("taking over expired freeze lease " + ns + "/" + held.name);
      }
      continue;  // someone else was faster: look again
    }
    held.waited_for = owner;
    if (Clock::now() + backoff > give_up) {
      return Error(Errc::kConflict, "another backup is freezing VM " + ns + "/" + vm + ": freeze lease " + held.name +
                                        " is held by " + owner + " (waited " +
                                        std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(wait).count()) +
                                        " ms; --freeze-wait)");
    }
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    if (cv.wait_for(lock, stop, backoff, [] { return false; }); stop.stop_requested()) {
      return Error(Errc::kCancelled, "interrupted while waiting for freeze lease " + ns + "/" + held.name);
    }
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
  }
  held.waited_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  return held;
}

Status FreezeLeases::release(const HeldLease& lease) {
  kube::DeleteOptions d;
  d.precondition_resource_version = lease.resource_version;
  kube::CallOptions o;
  o.critical = true;
  auto r = client_->remove(kube::resources::kLeases, lease.ns, lease.name, d, o);
  if (!r && r.error().code != Errc::kNotFound && r.error().code != Errc::kConflict) return r.error();
  return ok();
}

Status release_lease_of_run(kube::Client& client, const std::string& ns, const std::string& vm, const std::string& run_uid) {
  std::string name = record::freeze_lease_name(vm);
  auto cur = client.get(kube::resources::kLeases, ns, name);
  if (!cur) return cur.error().code == Errc::kNotFound ? ok() : Status(cur.error());
  std::string owner(kube::str_at(*cur, {"spec", "holderIdentity"}));
  if (run_uid.empty() || owner.find("/" + run_uid + "@") == std::string::npos) return ok();
  kube::DeleteOptions d;
  d.precondition_resource_version = std::string(kube::str_at(*cur, {"metadata", "resourceVersion"}));
  auto r = client.remove(kube::resources::kLeases, ns, name, d);
  if (!r && r.error().code != Errc::kNotFound && r.error().code != Errc::kConflict) return r.error();
  return ok();
}

}  // namespace kvb::backup
