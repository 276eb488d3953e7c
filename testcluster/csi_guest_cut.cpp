// Snapshots of a running real guest's disk (guest: qemu): the cut is a QMP
// drive-backup started at the cut instant, checked by the ext4 oracle and then
// handed to the volume store as the storage snapshot's file.
#include "testcluster/csi.h"

#include "testcluster/kubevirt.h"
#include "testcluster/qemu_vms.h"

namespace kvb::testcluster {
namespace fs = std::filesystem;

namespace {
std::string vkey(const std::string& ns, const std::string& name) { return ns + "/" + name; }
}  // namespace

void Csi::cut_guest_disk(const std::string& ns, const std::string& name, const std::string& content,
                         const std::string& claim, const std::string& vm, bool frozen, std::function<void()> ready) {
  GuestCut gc;
  gc.claim = claim;
  gc.snapshot = name;
  gc.frozen_at_cut = frozen;
  std::filesystem::path dir = std::filesystem::absolute(c_.options().state_dir / "qemu-snapshots" / ns);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  gc.file = dir / (content + ".raw");  // QEMU writes here; the store takes it when checked
  guest_cuts_[vkey(ns, name)] = gc;
  // The copy is point-in-time as of the job's start: queued on the guest's own
  // thread ahead of any thaw asked for after this instant.
  c_.qemu().cut(
      ns + "/" + vm, gc.file,
      [this, ns, vm, name, claim] {
        c_.timeline().record(TimelineEvent{WallClock::now(), "GuestCopyStarted", ns, vm, name, claim, false, "QMP drive-backup"});
      },
      [this, ns, vm, name, claim, content, ready](Result<guest::Ext4Check> r) {
        auto it = guest_cuts_.find(vkey(ns, name));
        if (it == guest_cuts_.end()) return;  // the snapshot was deleted meanwhile
        GuestCut& c = it->second;
        if (r) {
          // The copy becomes the storage snapshot's file (same file system: a rename).
          fs::path copy = c.file;
          Status moved = bytes_->cut(ns, claim, "snap-" + content, [copy](const fs::path&, const fs::path& to) -> Status {
            std::error_code rename_ec;
            fs::rename(copy, to, rename_ec);
            if (rename_ec) {
              return Error(Errc::kIo, "rename " + copy.string() + " -> " + to.string() + ": " + rename_ec.message());
            }
            return ok();
          });
          if (moved) c.file = bytes_->snapshot_path("snap-" + content);
          else r = moved.error();
        }
        if (!r) {
          c.state = "Failed";
          c.error = r.error().message;
          c_.timeline().record(TimelineEvent{WallClock::now(), "SnapshotFailed", ns, vm, name, claim, false, c.error});
          return snapshot_error(ns, name, "Failed to create snapshot: copy of the guest's disk failed: " + c.error);
        }
        c.state = "Checked";
        c.fs_clean = r->clean();
        c.needs_recovery = r->needs_recovery;
        c.fsck_exit = r->fsck_exit;
        c_.timeline().record(TimelineEvent{WallClock::now(), "GuestCopyChecked", ns, vm, name, claim, false,
                                           std::string("fsClean=") + (c.fs_clean ? "true" : "false") +
                                               " needsRecovery=" + (c.needs_recovery ? "true" : "false")});
        ready();
      });
}

}  // namespace kvb::testcluster
