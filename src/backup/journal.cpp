#include "backup/journal.h"

#include "kube/exec.h"
#include "kube/object.h"
#include "kubevirt/resources.h"

#include <boost/json.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace kvb::backup {
namespace json = boost::json;

namespace {

std::string entry_path(const std::string& backup) { return "journal/" + backup + ".json"; }

Result<int> lock_file(location::Location& loc, const std::string& backup, bool blocking) {
  auto root = loc.local_root();
  if (!root) return Error(Errc::kInvalidArgument, "the freeze journal needs a local backup location");
  auto path = *root / "journal" / (backup + ".lock");
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Error(Errc::kIo, "cannot open journal lock " + path.string());
  if (::flock(fd, LOCK_EX | (blocking ? 0 : LOCK_NB)) != 0) {
    ::close(fd);
    return Error(Errc::kConflict, "journal entry of backup " + backup + " is held by a running kvbackup");
  }
  return fd;
}

json::object entry_json(const JournalEntry& e) {
  json::array vms;
  for (const auto& v : e.vms) {
    json::array cmd;
    for (const auto& c : v.thaw_command) cmd.push_back(json::string(c));
    vms.push_back(json::object{{"namespace", v.ns}, {"name", v.name}, {"method", v.method}, {"pod", v.pod},
                               {"container", v.container}, {"thawCommand", cmd}});
  }
  return json::object{{"backup", e.backup}, {"pid", e.pid}, {"host", e.host},
                      {"startedAt", format_rfc3339(e.started, TimePrecision::kNanos)}, {"vms", vms}};
}

}  // namespace

Result<std::unique_ptr<Journal>> Journal::begin(location::Location& loc, JournalEntry entry) {
  KVB_TRY(int fd, lock_file(loc, entry.backup, false));
  auto st = loc.put(entry_path(entry.backup), json::serialize(entry_json(entry)));
  if (!st) {
    ::close(fd);
    return st.error().with_context("writing the freeze journal");
  }
  return std::unique_ptr<Journal>(new Journal(loc, entry.backup, fd));
}

Journal::~Journal() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // an unfinished entry stays for recover
}

Status Journal::finish() {
  if (finished_) return ok();
  finished_ = true;
  auto st = loc_.remove(entry_path(backup_));
  if (auto root = loc_.local_root()) {
    std::error_code ec;
    std::filesystem::remove(*root / "journal" / (backup_ + ".lock"), ec);
  }
  ::close(lock_fd_);
  lock_fd_ = -1;
  return st;
}

RecoveryReport recover(std::shared_ptr<kube::Client> client, location::Location& loc) {
  RecoveryReport report;
  auto names = loc.list("journal");
  if (!names) {
    report.problems.push_back(names.error().message);
    return report;
  }
  for (const auto& file : *names) {
    if (!file.ends_with(".json")) continue;
    std::string backup = file.substr(0, file.size() - 5);
    auto fd = lock_file(loc, backup, false);
    if (!fd) {
      ++report.live;
      report.lines.push_back("backup " + backup + " is still running: its journal entry is left alone");
      continue;
    }
    ++report.entries;
    auto text = loc.get("journal/" + file);
    boost::system::error_code ec;
    json::value v = text ? json::parse(*text, ec) : json::value();
    if (!text || ec || !v.is_object()) {
      report.problems.push_back("journal entry " + file + " is unreadable");
      ::close(*fd);
      continue;
    }
    bool all_ok = true;
    const auto* vms = kube::array_at(v.as_object(), {"vms"});
    for (const auto& vmv : vms ? *vms : json::array()) {
      ++report.vms;
      std::string ns(kube::str_at(vmv, {"namespace"})), name(kube::str_at(vmv, {"name"}));
      std::string method(kube::str_at(vmv, {"method"}));
      Status thawed = ok();
      if (method == "subresource") {
        kube::CallOptions o;
        o.critical = true;
        auto r = client->subresource("PUT", kubevirt::kVmiSubresources, ns, name, "unfreeze", std::nullopt, o);
        if (!r && r.error().code != Errc::kNotFound && r.error().code != Errc::kConflict) thawed = r.error();
      } else {
        kube::ExecRequest req;
        req.ns = ns;
        req.pod = std::string(kube::str_at(vmv, {"pod"}));
        req.container = std::string(kube::str_at(vmv, {"container"}));
        req.critical = true;
        if (const auto* cmd = kube::array_at(vmv, {"thawCommand"})) {
          for (const auto& c : *cmd) req.command.emplace_back(c.as_string());
        }
        auto r = kube::exec(client, req);
        if (!r.status && r.status.error().code != Errc::kNotFound) thawed = r.status;  // pod gone: VM restarted, not frozen
        else if (r.status && r.exit_code != 0) thawed = Error(Errc::kInternal, "thaw exited with code " + std::to_string(r.exit_code) + ": " + r.err);
      }
      if (thawed) {
        ++report.thawed;
        report.lines.push_back("thawed " + ns + "/" + name + " (left by backup " + backup + ")");
      } else {
        all_ok = false;
        report.problems.push_back("could not thaw " + ns + "/" + name + " (backup " + backup + "): " + thawed.error().message);
      }
    }
    if (all_ok) {
      (void)loc.remove("journal/" + file);
      if (auto root = loc.local_root()) {
        std::error_code rec;
        std::filesystem::remove(*root / "journal" / (backup + ".lock"), rec);
      }
      // The record of a backup whose process died says so.
      if (auto rec_text = loc.get("backups/" + backup + "/backup.json")) {
        boost::system::error_code pec;
        json::value r = json::parse(*rec_text, pec);
        if (!pec && r.is_object() && kube::str_at(r.as_object(), {"phase"}) == "InProgress") {
          r.as_object()["phase"] = "Failed";
          r.as_object()["error"] = "the kvbackup process died during the backup; kvbackup recover thawed its VMs";
          r.as_object()["finishedAt"] = format_rfc3339(WallClock::now(), TimePrecision::kNanos);
          (void)loc.put("backups/" + backup + "/backup.json", json::serialize(r));
        }
      }
    }
    ::close(*fd);
  }
  return report;
}

}  // namespace kvb::backup
