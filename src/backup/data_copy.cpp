#include "backup/data_copy.h"

#include "backup/change_tracking.h"
#include "common/bounded_queue.h"
#include "common/parallel.h"
#include "common/random.h"
#include "common/sanitize.h"
#include "kube/object.h"
#include "kube/port_forward.h"
#include "kube/resource.h"
#include "kubevirt/resources.h"
#include "kubevirt/volume_export.h"
#include "net/ranged_download.h"
#include "record/naming.h"

#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include <future>
#include <mutex>
#include <unistd.h>

namespace kvb::backup {
namespace json = boost::json;

namespace {

constexpr const char* kContentTypeAnnotation = "cdi.kubevirt.io/storage.contentType";

// The port-forwards one volume's download opened: what their kubelet said
// (the error channel) explains a failed download.
class Tunnels {
 public:
  void add(std::shared_ptr<kube::PortForward> pf) {
    std::lock_guard lock(mu_);
    std::erase_if(open_, [](const auto& p) { return p->ended() && p->error().empty(); });
    open_.push_back(std::move(pf));
  }
  std::string errors() const {
    std::lock_guard lock(mu_);
    std::string out;
    for (const auto& p : open_) {
      std::string e = p->error();
      if (!e.empty() && out.find(e) == std::string::npos) out += (out.empty() ? "" : "; ") + e;
    }
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<kube::PortForward>> open_;
};

std::map<std::string, std::string> copy_labels(const DataCopyContext& ctx, const record::VmRecord& vm) {
  return {{record::kBackupLabel, record::label_value(ctx.backup)},
          {record::kBackupUidLabel, ctx.run_uid},
          {record::kVmLabel, record::label_value(vm.name)},
          {record::kRoleLabel, record::kDataCopyRole}};
}

// The claim the export reads: the snapshot's data, shaped like the source claim.
json::object claim_from_snapshot(const std::string& name, const std::map<std::string, std::string>& labels,
                                 const json::object& source, const record::VolumeRecord& vol) {
  json::object lab;
  for (const auto& [k, v] : labels) lab[k] = v;
  std::string size = !vol.restore_size.empty() ? vol.restore_size : vol.size;
  json::object spec{{"storageClassName", vol.storage_class},
                    {"resources", {{"requests", {{"storage", size}}}}},
                    {"dataSource", {{"apiGroup", "snapshot.storage.k8s.io"}, {"kind", "VolumeSnapshot"}, {"name", vol.volume_snapshot}}}};
  if (const auto* modes = kube::array_at(source, {"spec", "accessModes"})) {
    spec["accessModes"] = *modes;
  } else {
    spec["accessModes"] = json::array{"ReadWriteOnce"};
  }
  std::string mode(kube::str_at(source, {"spec", "volumeMode"}));
  spec["volumeMode"] = mode.empty() ? "Filesystem" : mode;
  return json::object{{"apiVersion", "v1"},
                      {"kind", "PersistentVolumeClaim"},
                      {"metadata",
                       {{"name", name},
                        {"labels", lab},
                        // A VM's file-system claim holds disk.img: the export offers it raw.
                        {"annotations", {{kContentTypeAnnotation, "kubevirt"}}}}},
                      {"spec", spec}};
}

// Deletes the export, its Secret and the claim when the copy ends, however it ends.
class Temporaries {
 public:
  Temporaries(kube::Client& c, std::string ns) : c_(c), ns_(std::move(ns)) {}
  ~Temporaries() { remove(); }
  // Deletes them now (once).
  void remove() {
    if (!export_.empty()) (void)kubevirt::remove_volume_export(c_, ns_, export_);
    if (!claim_.empty()) (void)c_.remove(kube::resources::kPersistentVolumeClaims, ns_, claim_);
    export_.clear();
    claim_.clear();
  }
  void claim(std::string n) { claim_ = std::move(n); }
  void exported(std::string n) { export_ = std::move(n); }

 private:
  kube::Client& c_;
  std::string ns_, claim_, export_;
};

std::string transfer_item(const record::VmRecord& vm, const record::VolumeRecord& vol) { return vm.key() + " " + vol.name; }

// Milliseconds since `t`, and `t` moved to now: one stage of DataCopyRecord::millis.
int64_t lap(std::chrono::steady_clock::time_point& t) {
  const auto now = std::chrono::steady_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - t).count();
  t = now;
  return ms;
}

Status copy(const DataCopyContext& ctx, const record::VmRecord& vm, record::VolumeRecord& vol, record::DataCopyRecord& out,
            std::stop_token stop) {
  kube::Client& c = *ctx.client;
  auto stage = std::chrono::steady_clock::now();
  auto source = c.get(kube::resources::kPersistentVolumeClaims, vm.ns, vol.pvc);
  if (!source) return Error(source.error().code, "cannot read the source claim " + vol.pvc + ": " + source.error().message);
  std::string mode(kube::str_at(*source, {"spec", "volumeMode"}));
  out.volume_mode = mode.empty() ? "Filesystem" : mode;
  // Changed-block tracking where the driver offers it (change_tracking.h).
  const auto asked = std::chrono::steady_clock::now();
  const ChangePlan plan = plan_changes(c, ctx.repo, out.series, vm, vol, out.volume_mode, stop);
  if (stop.stop_requested()) return Error(Errc::kCancelled, "interrupted before the copy started");
  const std::vector<repo::ByteRange>* reading = plan.reading();
  if (ctx.say && reading) {
    uint64_t bytes = 0;
    for (const auto& r : *reading) bytes += r.length;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - asked).count();
    char took[32];
    std::snprintf(took, sizeof took, "%.2f", s);
    const std::string named = plan.known ? std::to_string(plan.delta_bytes) + " changed bytes since the previous copy"
                                         : std::to_string(bytes) + " allocated bytes in " + std::to_string(reading->size()) + " ranges";
    ctx.say("volume " + vm.key() + " " + vol.name + ": the CSI driver's snapshot metadata names " + named + " (asked in " + took +
            " s); downloading " + std::to_string(bytes) + " of " + std::to_string(plan.size()));
  }

  out.millis.plan = lap(stage);

  const std::string name = "kvbackup-copy-" + random_hex(12);
  const auto labels = copy_labels(ctx, vm);
  Temporaries temps(c, vm.ns);
  // The claim, and the token Secret with the export, at once: the export
  // controller looks at an export again when its claim changes, so it becomes
  // Ready once the claim is bound, whichever was created first.
  kubevirt::ExportRequest req{vm.ns, name, name, labels, "2h"};
  auto exported = std::async(std::launch::async, [&c, &req] { return kubevirt::create_volume_export(c, req); });
  auto claimed = c.create(kube::resources::kPersistentVolumeClaims, vm.ns, claim_from_snapshot(name, labels, *source, vol));
  if (claimed) temps.claim(name);
  auto token = exported.get();
  if (token) temps.exported(name);
  if (!claimed) {
    return Error(claimed.error().code, "cannot create a claim from snapshot " + vol.volume_snapshot + ": " + claimed.error().message);
  }
  if (!token) return token.error();
  out.millis.create = lap(stage);
  KVB_TRY(auto link, kubevirt::wait_raw_link(ctx.client, req, *token, ctx.export_timeout, stop));
  out.millis.ready = lap(stage);
  auto cancelled = [&stop] { return stop.stop_requested(); };

  net::DownloadOptions dopt;
  dopt.connections = ctx.connections;
  dopt.retry_budget = ctx.retry_budget;
  dopt.headers = {{kubevirt::kExportTokenHeader, link.token}};
  dopt.transport.ca_pem = link.ca_pem;
  dopt.transport.trust_hint = " and the export's links.external.cert";
  out.transport = link.external ? "external" : "port-forward";
  auto tunnels = std::make_shared<Tunnels>();
  if (!link.external) {
    // No Ingress or Route: the internal link through port-forwards to the exporter
    // pod, one WebSocket per connection (TLS end to end with links.internal.cert).
    if (ctx.say) {
      ctx.say("export " + vm.ns + "/" + name + " has no external link: reading it through port-forward to pod " + link.exporter_pod);
    }
    dopt.transport.trust_hint = " and the export's links.internal.cert";
    dopt.transport.dial = [client = ctx.client, ns = vm.ns, pod = link.exporter_pod, tunnels]() -> Result<int> {
      auto pf = kube::open_port_forward(client, kube::PortForwardRequest{ns, pod, kubevirt::kExporterPort});
      if (!pf) return pf.error();
      tunnels->add(*pf);
      return (*pf)->take_fd();
    };
  }
  dopt.cancelled = cancelled;
  if (reading) {
    dopt.only.emplace();
    for (const auto& r : *reading) dopt.only->emplace_back(r.offset, r.length);
    dopt.expect_size = plan.size();
    dopt.hash_gaps_as_zeros = plan.allocated.has_value();  // the image's digest, unallocated bytes read as zeros
  }
  if (ctx.transfer) {
    dopt.progress = [&ctx, item = transfer_item(vm, vol)](uint64_t done, uint64_t total) {
      ctx.transfer({TransferEvent::Kind::kProgress, item, done, total, 0});
    };
  }
  // The download hands its ranges to the put through a short queue, in
  // process: no socket or pipe, and a range the size of the put's window is
  // stored without a copy.
  auto ranges = std::make_shared<BoundedQueue<std::string>>(2);
  std::shared_future<Result<net::DownloadResult>> download = std::async(std::launch::async, [url = link.url, ranges, dopt] {
    auto r = net::download_into(
        url, [&ranges](std::string&& bytes) -> Status {
          if (ranges->push(std::move(bytes))) return ok();
          return Error(Errc::kIo, "the repository put stopped reading the download");
        },
        dopt);
    ranges->close();  // the put sees the end of the stream
    return r;
  }).share();
  auto next = [ranges, download]() -> Result<std::optional<std::string>> {
    if (auto bytes = ranges->pop()) return std::optional<std::string>(std::move(*bytes));
    if (const auto& r = download.get(); !r) return r.error();
    return std::optional<std::string>();
  };
  std::string shown = "export://" + vm.ns + "/" + vol.pvc + "@" + vol.volume_snapshot;
  repo::PutOptions popt;
  popt.tags = {"backup=" + ctx.backup, kSnapshotTag + vol.volume_snapshot};
  if (!plan.target_handle.empty()) popt.tags.push_back(kSnapshotHandleTag + plan.target_handle);
  popt.known_changes = plan.known;
  popt.allocated = plan.allocated;
  auto put = ctx.repo.put(out.series, repo::ImageSource::pulled(shown, next), popt);
  ranges->close();  // a put that stopped early: the download's next hand-over fails and it ends
  const auto& got = download.get();
  out.millis.transfer = lap(stage);
  temps.remove();
  out.millis.cleanup = lap(stage);
  // A put that failed first makes the download fail with kIo (its reader went away): report the put's error then.
  if (!got && (put || got.error().code != Errc::kIo)) {
    std::string why = got.error().code == Errc::kUnauthorized ? "the exporter refused the export token (401 Unauthorized): " : "";
    std::string said = tunnels->errors();
    return Error(got.error().code, "download of " + vol.pvc + "'s snapshot" + (link.external ? "" : " through port-forward") +
                                       " failed: " + why + got.error().message + (said.empty() ? "" : " (port-forward: " + said + ")"));
  }
  if (!put) return Error(put.error().code, "repository put failed: " + put.error().message);
  if (put->bytes != got->object_size) {
    return Error(Errc::kDamaged, "the repository stored " + std::to_string(put->bytes) + " bytes of a " + std::to_string(got->object_size) +
                                     "-byte image");
  }
  if (plan.known) {
    out.change_tracking = plan.method;
  } else {
    out.change_tracking = put->parent.empty() ? "full" : "fingerprint";
    out.change_tracking_reason = plan.reason.empty() ? put->full_reason : plan.reason;
  }
  out.allocated_only = plan.allocated.has_value();
  out.allocated_only_reason = plan.allocated_reason;
  out.downloaded_bytes = got->bytes;
  out.repository_snapshot = put->snapshot;
  out.bytes = put->bytes;
  out.new_bytes = put->new_bytes;
  out.stored_bytes = put->stored_bytes;
  // Only the changed ranges were read: no digest. Only the allocated ones: the
  // image's digest with the unallocated bytes as zeros, which they read as.
  out.sha256 = plan.known ? "" : got->sha256;
  out.retried_ranges = got->retried_ranges;
  return ok();
}

}  // namespace

std::string data_series(const std::string& cluster_id, const std::string& ns, const std::string& vm, const std::string& volume) {
  return cluster_id + "/" + ns + "/" + vm + "/" + volume;
}

Result<std::string> cluster_id(kube::Client& client) {
  auto ns = client.get(kube::resources::kNamespaces, "", "kube-system");
  if (ns) {
    std::string uid(kube::uid_of(*ns));
    if (!uid.empty()) return "cluster-" + uid;
  } else if (ns.error().code != Errc::kNotFound) {
    return Error(ns.error().code, "cannot read namespace kube-system, whose uid names the repository's series: " + ns.error().message);
  }
  auto u = boost::urls::parse_uri(client.config().cluster.server);
  if (u) return std::string(u->encoded_host()) + (u->has_port() ? "-" + std::string(u->port()) : "");
  return std::string("cluster");
}

void copy_volume(const DataCopyContext& ctx, const record::VmRecord& vm, record::VolumeRecord& vol, std::stop_token stop) {
  record::DataCopyRecord out;
  out.series = data_series(ctx.cluster_id, vm.ns, vm.name, vol.name);
  auto t0 = std::chrono::steady_clock::now();
  if (auto st = copy(ctx, vm, vol, out, stop); !st) {
    out.repository_snapshot.clear();
    out.error = sanitize_foreign("copy of VM " + vm.key() + " volume " + vol.name + ": " + st.error().message);
    if (ctx.transfer) ctx.transfer({TransferEvent::Kind::kFailed, transfer_item(vm, vol), 0, 0, 0});
    if (ctx.say) ctx.say(out.error);
  } else {
    if (ctx.transfer) ctx.transfer({TransferEvent::Kind::kDone, transfer_item(vm, vol), out.bytes, out.bytes, 0});
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    char line[256];
    std::snprintf(line, sizeof line, "%.1f MiB in %.1f s (%.0f MiB/s), %.1f MiB new", out.bytes / 1048576.0, s,
                  s > 0 ? out.bytes / 1048576.0 / s : 0.0, out.new_bytes / 1048576.0);
    if (ctx.say) {
      ctx.say("copied VM " + vm.key() + " volume " + vol.name + " to repository snapshot " + out.repository_snapshot.substr(0, 12) + ": " +
              line);
    }
  }
  vol.copy = std::move(out);
}

void copy_backup_data(const DataCopyContext& ctx, std::vector<record::VmRecord>& vms, int concurrency, std::stop_token stop) {
  std::vector<std::pair<size_t, size_t>> work;  // (vm, volume)
  for (size_t i = 0; i < vms.size(); ++i) {
    const auto& vm = vms[i];
    if (vm.phase != record::VmPhase::kCompleted) continue;
    for (size_t j = 0; j < vm.volumes.size(); ++j) {
      const auto& v = vm.volumes[j];
      if (!v.volume_snapshot.empty() && !v.deleted && v.ready_at) work.emplace_back(i, j);
    }
  }
  if (work.empty()) return;
  if (ctx.say) ctx.say("copying " + std::to_string(work.size()) + " volumes into the repository, " + std::to_string(concurrency) + " at once");
  if (ctx.transfer) ctx.transfer({TransferEvent::Kind::kPlanned, "", 0, 0, work.size()});
  parallel_for(work.size(), std::max(1, concurrency), [&](size_t k) {
    auto [i, j] = work[k];
    if (stop.stop_requested()) {
      record::DataCopyRecord out;
      out.series = data_series(ctx.cluster_id, vms[i].ns, vms[i].name, vms[i].volumes[j].name);
      out.error = "copy of VM " + vms[i].key() + " volume " + vms[i].volumes[j].name + ": interrupted before it started";
      vms[i].volumes[j].copy = std::move(out);
      return;
    }
    copy_volume(ctx, vms[i], vms[i].volumes[j], stop);  // each worker writes only its own volume
  });
  for (auto& vm : vms) {
    std::string failed;
    for (const auto& v : vm.volumes) {
      if (!v.copy || v.copy->ok()) continue;
      vm.problems.push_back(v.copy->error);
      failed += (failed.empty() ? "" : ", ") + v.name;
    }
    if (failed.empty()) continue;
    vm.phase = record::VmPhase::kPartiallyFailed;
    vm.reason = (vm.reason.empty() ? "" : vm.reason + "; ") + "the data of volume(s) " + failed + " was not copied into the repository";
  }
}

Result<std::vector<std::string>> remove_copy_leftovers(kube::Client& client, const std::string& ns, const std::string& run_uid) {
  kube::ListOptions lo;
  lo.label_selector = std::string(record::kBackupUidLabel) + "=" + run_uid + "," + record::kRoleLabel + "=" + record::kDataCopyRole;
  std::vector<std::string> removed;
  auto each = [&](const kube::ResourceRef& ref, const char* what, auto remove) -> Status {
    KVB_TRY(auto list, client.list(ref, ns, lo));
    for (const auto& item : list.items) {
      std::string name(kube::name_of(item.as_object()));
      if (auto st = remove(name); !st) return st;
      removed.push_back(std::string(what) + " " + ns + "/" + name);
    }
    return ok();
  };
  KVB_CHECK(each(kubevirt::kVirtualMachineExports, "VirtualMachineExport",
                 [&](const std::string& n) { return kubevirt::remove_volume_export(client, ns, n); }));
  auto remove_plain = [&](const kube::ResourceRef& ref) {
    return [&client, &ns, &ref](const std::string& n) -> Status {
      auto r = client.remove(ref, ns, n);
      if (!r && r.error().code != Errc::kNotFound) return r.error();
      return ok();
    };
  };
  KVB_CHECK(each(kube::resources::kSecrets, "Secret", remove_plain(kube::resources::kSecrets)));
  KVB_CHECK(each(kube::resources::kPersistentVolumeClaims, "PersistentVolumeClaim", remove_plain(kube::resources::kPersistentVolumeClaims)));
  return removed;
}

}  // namespace kvb::backup
