#include "cli/backup_report.h"

#include "common/duration.h"
#include "common/sanitize.h"
#include "common/shell.h"

#include <fmt/format.h>

#include <algorithm>

namespace kvb::cli {
using record::Consistency;
using record::VmPhase;

namespace {

std::string clock_time(const std::optional<WallTime>& t) {
  return t ? format_rfc3339(*t, TimePrecision::kMillis) : std::string("-");
}

std::string offset_ms(const std::optional<WallTime>& from, const std::optional<WallTime>& t) {
  if (!from || !t) return "-";
  return fmt::format("+{:.1f} ms", std::chrono::duration<double, std::milli>(*t - *from).count());
}

std::string command_line(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) out += (out.empty() ? "" : " ") + shell_quote(a);
  return out;
}

std::string window(const record::VmRecord& v) {
  if (!v.freeze.requested_at) return "-";
  return fmt::format("{:.0f}", v.freeze.window_ms());
}

std::string problems(const record::VmRecord& v) {
  std::string out;
  if (v.phase != VmPhase::kCompleted || v.consistency != Consistency::kFileSystemConsistent) out = v.reason;
  for (const auto& p : v.problems) out += (out.empty() ? "" : "; ") + p;
  return out.empty() ? "-" : out;
}

}  // namespace

bool ended_as_promised(const record::VmRecord& vm) {
  if (vm.phase == VmPhase::kFailed || vm.phase == VmPhase::kPartiallyFailed) return false;
  if (vm.phase == VmPhase::kSkipped) return vm.promised == Consistency::kNone;  // planned skip (--on-no-agent skip)
  return vm.consistency == vm.promised ||
         (vm.promised == Consistency::kCrashConsistent && vm.consistency == Consistency::kFileSystemConsistent);
}

bool every_vm_as_promised(const record::BackupRecord& rec) {
  if (rec.phase != record::BackupPhase::kCompleted && rec.phase != record::BackupPhase::kPartiallyFailed) return false;
  return std::all_of(rec.vms.begin(), rec.vms.end(), ended_as_promised);
}

std::string vm_table(const record::BackupRecord& rec) {
  size_t wname = 2;
  for (const auto& v : rec.vms) wname = std::max(wname, v.ns.size() + 1 + v.name.size());
  std::string out = fmt::format("{:<{}}  {:<9}  {:<20}  {:>9}  {:>7}  {}\n", "VM", wname, "PHASE", "CONSISTENCY",
                                "FREEZE_MS", "VOLUMES", "PROBLEMS");
  for (const auto& v : rec.vms) {
    size_t cut = 0;
    for (const auto& vol : v.volumes) cut += vol.cut_at ? 1 : 0;
    std::string consistency(to_string(v.consistency));
    if (v.consistency != v.promised && v.phase != VmPhase::kSkipped) consistency += "!";
    out += fmt::format("{:<{}}  {:<9}  {:<20}  {:>9}  {:>7}  {}\n", v.ns + "/" + v.name, wname, to_string(v.phase),
                       consistency, window(v), fmt::format("{}/{}", cut, v.volumes.size()), problems(v));
  }
  return printable_text(out);
}

std::string describe_backup(const record::BackupRecord& rec, const std::string& vm) {
  std::string out;
  out += fmt::format("Backup:       {}\n", rec.name);
  out += fmt::format("Phase:        {}{}\n", to_string(rec.phase), rec.error.empty() ? "" : " (" + rec.error + ")");
  out += fmt::format("Started:      {}\n", format_rfc3339(rec.started, TimePrecision::kMillis));
  out += fmt::format("Finished:     {}\n", clock_time(rec.finished));
  out += fmt::format("Cluster:      {}\n", rec.cluster);
  out += fmt::format("kvbackup:     {}\n", rec.kvbackup_version);
  const auto& o = rec.options;
  out += fmt::format("Run:          {}\n", rec.uid.empty() ? "-" : rec.uid);
  out += fmt::format("Options:      rules={} freeze-method={} on-no-agent={} concurrency={} freeze-deadline={} consistency-group={}\n",
                     to_string(o.rules), to_string(o.freeze_method), to_string(o.on_no_agent), o.concurrency,
                     format_duration(o.freeze_deadline), to_string(o.consistency_group));
  if (!o.pre_rule.empty() || !o.post_rule.empty()) {
    out += fmt::format("Rules:        pre {}, post {}\n", o.pre_rule.empty() ? "-" : o.pre_rule, o.post_rule.empty() ? "-" : o.post_rule);
  }
  int fsc = 0, crash = 0, offline = 0, failed = 0, skipped = 0;
  for (const auto& v : rec.vms) {
    if (v.phase == VmPhase::kFailed) ++failed;
    else if (v.phase == VmPhase::kSkipped) ++skipped;
    else if (v.consistency == Consistency::kFileSystemConsistent) ++fsc;
    else if (v.consistency == Consistency::kCrashConsistent) ++crash;
    else if (v.consistency == Consistency::kOffline) ++offline;
  }
  out += fmt::format("VMs:          {} ({} file-system consistent, {} crash consistent, {} offline, {} skipped, {} failed)\n",
                     rec.vms.size(), fsc, crash, offline, skipped, failed);
  for (const auto& w : rec.warnings) out += "Warning:      " + w + "\n";
  for (const auto& v : rec.vms) {
    if (!vm.empty() && vm != v.name && vm != v.ns + "/" + v.name) continue;
    out += fmt::format("\nVM {}/{}\n", v.ns, v.name);
    out += fmt::format("  Phase:        {}\n", to_string(v.phase));
    out += fmt::format("  Consistency:  {} (promised {})\n", to_string(v.consistency), to_string(v.promised));
    if (!v.reason.empty()) out += fmt::format("  Reason:       {}\n", v.reason);
    const auto& f = v.freeze;
    out += fmt::format("  Freeze:       method {}{}\n", to_string(f.kind), f.evidence.empty() ? "" : ", evidence: " + f.evidence);
    if (!f.lease.empty()) out += fmt::format("    {}\n", f.lease);
    if (f.auto_thaw_seconds) out += fmt::format("    auto-thaw   {} s after the freeze\n", *f.auto_thaw_seconds);
    if (f.requested_at) {
      out += fmt::format("    requested   {}\n", clock_time(f.requested_at));
      out += fmt::format("    frozen      {} ({})\n", clock_time(f.frozen_at), offset_ms(f.requested_at, f.frozen_at));
      if (f.held_at) out += fmt::format("    still held  {} ({}): {}\n", clock_time(f.held_at), offset_ms(f.requested_at, f.held_at), f.hold);
      out += fmt::format("    thaw asked  {} ({})\n", clock_time(f.thaw_requested_at), offset_ms(f.requested_at, f.thaw_requested_at));
      out += f.thaw_ok ? fmt::format("    thawed      {} ({})\n", clock_time(f.thawed_at), offset_ms(f.requested_at, f.thawed_at))
                       : std::string("    thawed      NOT CONFIRMED: run kvbackup recover\n");
      out += fmt::format("    window      {:.1f} ms\n", f.window_ms());
    }
    out += "  Volumes:\n";
    for (const auto& vol : v.volumes) {
      out += fmt::format("    {}: claim {}, class {} -> {}, snapshot {}{}\n", vol.name, vol.pvc, vol.storage_class,
                         vol.snapshot_class, vol.volume_snapshot.empty() ? "-" : vol.volume_snapshot, vol.deleted ? ", deleted again" : "");
      out += fmt::format("      cut {} ({} after the freeze), ready {}{}\n", clock_time(vol.cut_at),
                         offset_ms(f.frozen_at, vol.cut_at), clock_time(vol.ready_at),
                         vol.restore_size.empty() ? "" : ", restore size " + vol.restore_size);
      if (!vol.error.empty()) out += "      error: " + vol.error + "\n";
      if (const auto& c = vol.copy) {
        if (c->ok()) {
          out += fmt::format("      copied to repository snapshot {} ({}): {} bytes, {} new, {} stored, sha256 {}{}\n",
                             c->repository_snapshot.substr(0, 12), c->series, c->bytes, c->new_bytes, c->stored_bytes, c->sha256.empty() ? "-" : c->sha256,
                             c->transport.empty() ? "" : ", via " + c->transport);
          if (!c->change_tracking.empty()) {
            out += fmt::format("      change tracking: {}, {} bytes downloaded{}{}\n", c->change_tracking, c->downloaded_bytes,
                               c->allocated_only ? ", only the allocated ranges" : "",
                               c->change_tracking_reason.empty() ? "" : " (not snapshot-metadata: " + c->change_tracking_reason + ")");
            if (!c->allocated_only && !c->allocated_only_reason.empty()) {
              out += "      every byte read: " + c->allocated_only_reason + "\n";
            }
          }
        } else {
          out += "      copy failed: " + c->error + "\n";
        }
      }
    }
    if (!v.executions.empty()) out += "  Rule executions:\n";
    for (const auto& e : v.executions) {
      out += fmt::format("    {} {} {}/{}: {} -> exit {} in {:.1f} ms{}\n", e.phase, e.rule, e.pod, e.container,
                         command_line(e.command), e.exit_code, e.duration_ms, e.verdict.empty() ? "" : " (" + e.verdict + ")");
      if (!e.stdout_excerpt.empty()) out += "      stdout: " + e.stdout_excerpt + "\n";
      if (!e.stderr_excerpt.empty()) out += "      stderr: " + e.stderr_excerpt + "\n";
    }
    for (const auto& p : v.problems) out += "  Problem:      " + p + "\n";
    if (!v.resources.empty()) out += fmt::format("  Resources:    {} objects saved\n", v.resources.size());
  }
  return printable_text(out);
}

}  // namespace kvb::cli
