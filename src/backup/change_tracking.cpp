#include "backup/change_tracking.h"

#include "cbt/client.h"
#include "common/base64.h"
#include "common/printable.h"
#include "kube/object.h"
#include "kube/resource.h"

#include <boost/json.hpp>

#include <cstdlib>

namespace kvb::backup {
namespace json = boost::json;

namespace {

const kube::ResourceRef kSnapshotMetadataServices{"cbt.storage.k8s.io", "v1beta1", "snapshotmetadataservices", "SnapshotMetadataService",
                                                  false};
const kube::ResourceRef kServiceAccounts{"", "v1", "serviceaccounts", "ServiceAccount", true};

std::string tag_value(const repo::Snapshot& s, std::string_view prefix) {
  for (const auto& t : s.tags) {
    if (t.rfind(prefix, 0) == 0) return t.substr(prefix.size());
  }
  return "";
}

// The CSI driver and handle of a VolumeSnapshot, through its bound content.
struct Bound {
  std::string content, driver, handle;
};
Result<Bound> bound_content(kube::Client& c, const std::string& ns, const std::string& snapshot) {
  KVB_TRY(auto vs, c.get(kube::resources::kVolumeSnapshots, ns, snapshot));
  Bound b;
  b.content = std::string(kube::str_at(vs, {"status", "boundVolumeSnapshotContentName"}));
  if (b.content.empty()) return Error(Errc::kNotFound, "VolumeSnapshot " + ns + "/" + snapshot + " is bound to no content");
  KVB_TRY(auto vsc, c.get(kube::resources::kVolumeSnapshotContents, "", b.content));
  b.driver = std::string(kube::str_at(vsc, {"spec", "driver"}));
  b.handle = std::string(kube::str_at(vsc, {"status", "snapshotHandle"}));
  if (b.handle.empty()) return Error(Errc::kNotFound, "VolumeSnapshotContent " + b.content + " has no status.snapshotHandle");
  return b;
}

std::pair<std::string, std::string> service_account() {
  const char* env = std::getenv("KVBACKUP_SERVICE_ACCOUNT");
  std::string s = env && *env ? env : "kvbackup/kvbackup";
  auto slash = s.find('/');
  if (slash == std::string::npos) return {"kvbackup", s};
  return {s.substr(0, slash), s.substr(slash + 1)};
}

// Allocated blocks this close together are fetched as one range (the gap's
// zeros come along and become a hole again in the put).
constexpr uint64_t kAllocatedGapMerged = 256 << 10;

// The driver's SnapshotMetadata service and a token for it, asked for once per
// copy (the delta and the allocated ranges share them).
class Service {
 public:
  Service(kube::Client& c, std::string driver, std::string ns, std::stop_token stop)
      : c_(c), driver_(std::move(driver)), ns_(std::move(ns)), stop_(stop) {}
  Result<cbt::Call> call() {
    if (!call_) call_ = connect();
    return *call_;
  }

 private:
  Result<cbt::Call> connect() {
    auto fail = [](std::string why) { return Error(Errc::kServiceUnavailable, std::move(why)); };
    auto sms = c_.get(kSnapshotMetadataServices, "", driver_);
    if (!sms) {
      if (sms.error().code == Errc::kNotFound) return fail("CSI driver " + driver_ + " has no SnapshotMetadataService");
      return fail("cannot read SnapshotMetadataService " + driver_ + ": " + sms.error().message);
    }
    const std::string address(kube::str_at(*sms, {"spec", "address"})), audience(kube::str_at(*sms, {"spec", "audience"}));
    auto ca = base64_decode(kube::str_at(*sms, {"spec", "caCert"}));
    if (address.empty() || audience.empty() || !ca || ca->empty()) {
      return fail("SnapshotMetadataService " + driver_ + " lacks spec.address, spec.audience or a base64 spec.caCert");
    }
    const auto [sa_ns, sa_name] = service_account();
    json::object treq{{"apiVersion", "authentication.k8s.io/v1"},
                      {"kind", "TokenRequest"},
                      {"spec", json::object{{"audiences", json::array{json::string(audience)}}, {"expirationSeconds", 600}}}};
    auto token = c_.subresource("POST", kServiceAccounts, sa_ns, sa_name, "token", json::value(treq));
    if (!token) return fail("cannot get a token of ServiceAccount " + sa_ns + "/" + sa_name + " for audience " + audience + ": " + token.error().message);
    std::string tok(kube::str_at(*token, {"status", "token"}));
    if (tok.empty()) return fail("the TokenRequest for ServiceAccount " + sa_ns + "/" + sa_name + " returned no token");
    return cbt::Call{{address, *ca}, Secret(tok), ns_, std::chrono::seconds(60), stop_};
  }

  kube::Client& c_;
  const std::string driver_, ns_;
  std::stop_token stop_;
  std::optional<Result<cbt::Call>> call_;
};

// Why the delta since the parent cannot be used ("" when plan.known is set).
std::string plan_delta(kube::Client& c, repo::Repository& repo, const std::string& series, const record::VmRecord& vm,
                       const record::VolumeRecord& vol, const std::string& volume_mode, const Result<Bound>& target,
                       std::optional<Service>& service, ChangePlan& plan) {
  auto parent = repo.find(series);
  if (!parent) return "no earlier copy of this volume in the repository";
  if (!parent->map) return "the previous copy " + parent->id.substr(0, 12) + " has no image map";
  plan.method = "fingerprint";
  if (volume_mode != "Block") {
    return "volume mode " + volume_mode + ": a block delta does not describe the image file on the claim's file system";
  }
  if (!target) return "cannot read the new snapshot's content: " + target.error().message;
  const std::string base_name = tag_value(*parent, kSnapshotTag), base_handle = tag_value(*parent, kSnapshotHandleTag);
  if (base_name.empty() || base_handle.empty()) {
    return "the previous copy " + parent->id.substr(0, 12) + " does not name its VolumeSnapshot's CSI handle";
  }
  auto base = bound_content(c, vm.ns, base_name);
  if (!base) {
    if (base.error().code == Errc::kNotFound) return "the previous copy's VolumeSnapshot " + vm.ns + "/" + base_name + " no longer exists";
    return "cannot read the previous copy's VolumeSnapshot " + vm.ns + "/" + base_name + ": " + base.error().message;
  }
  if (base->handle != base_handle) {
    return "VolumeSnapshot " + vm.ns + "/" + base_name + " is now a different snapshot (handle " + base->handle + ", the copy was of " +
           base_handle + ")";
  }
  if (base->driver != target->driver) return "the previous snapshot is of driver " + base->driver + ", the new one of " + target->driver;
  auto call = service->call();
  if (!call) return call.error().message;
  auto delta = cbt::get_metadata_delta(*call, base_handle, vol.volume_snapshot);
  if (!delta) return "SnapshotMetadataService " + target->driver + ": " + delta.error().message;
  if (delta->capacity != parent->size) {
    return "the delta is of a " + std::to_string(delta->capacity) + "-byte volume and the previous copy " + std::to_string(parent->size) +
           " bytes";
  }
  std::vector<repo::ByteRange> changed;
  for (const auto& r : delta->ranges) {
    changed.push_back(repo::ByteRange{r.offset, r.length});
    plan.delta_bytes += r.length;
  }
  plan.known = repo::KnownChanges{parent->id, parent->size, repo::region_ranges(std::move(changed), parent->size)};
  plan.method = "snapshot-metadata";
  return "";
}

// Why the copy must read every byte ("" when plan.allocated is set).
std::string plan_allocated(const record::VolumeRecord& vol, const std::string& volume_mode, const Result<Bound>& target,
                           std::optional<Service>& service, ChangePlan& plan) {
  if (volume_mode != "Block") return "volume mode " + volume_mode + ": the volume's allocation is not the image file's";
  if (!target) return "cannot read the new snapshot's content: " + target.error().message;
  auto call = service->call();
  if (!call) return call.error().message;
  auto got = cbt::get_metadata_allocated(*call, vol.volume_snapshot);
  if (!got) return "SnapshotMetadataService " + target->driver + ": " + got.error().message;
  repo::AllocatedRanges a;
  a.size = got->capacity;
  for (const auto& r : got->ranges) {
    // Blocks next to each other, or a gap too short to be worth a request of its own, are one range.
    if (!a.data.empty() && r.offset <= a.data.back().offset + a.data.back().length + kAllocatedGapMerged) {
      a.data.back().length = r.offset + r.length - a.data.back().offset;
    } else {
      a.data.push_back(repo::ByteRange{r.offset, r.length});
    }
  }
  plan.allocated = std::move(a);
  return "";
}

}  // namespace

ChangePlan plan_changes(kube::Client& c, repo::Repository& repo, const std::string& series, const record::VmRecord& vm,
                        const record::VolumeRecord& vol, const std::string& volume_mode, std::stop_token stop) {
  ChangePlan plan;
  auto target = bound_content(c, vm.ns, vol.volume_snapshot);
  // A handle that cannot be a repository tag (not printable, too long) is not
  // kept: the next copy then cannot ask for a delta from this snapshot.
  if (target && check_name(kSnapshotHandleTag + target->handle, "tag")) plan.target_handle = target->handle;
  std::optional<Service> service;
  if (target) service.emplace(c, target->driver, vm.ns, stop);
  plan.reason = plan_delta(c, repo, series, vm, vol, volume_mode, target, service, plan);
  if (!plan.known && !stop.stop_requested()) plan.allocated_reason = plan_allocated(vol, volume_mode, target, service, plan);
  return plan;
}

}  // namespace kvb::backup
