// One VM's restore, as a sequence with an undo (docs/restore.md):
//
//   Secrets and ConfigMaps -> (another namespace) pre-provisioned snapshot
//   contents and snapshots -> one claim per volume (from its snapshot, or a
//   CDI upload DataVolume for a volume from the repository) -> the uploads,
//   volumes in parallel, every one finished -> wait until bound ->
//   (--existing replace) stop and delete the VM in the way -> create the VM ->
//   wait until it runs.
//
// Before each step that creates or deletes something, the VM's record names
// it, with its stage, and is saved (the checkpoint): the restore record is the
// restore's journal. Objects already made by this restore (its label) are
// adopted, so running the sequence again after an interruption completes it.
// undo() removes what this VM's restore created, newest first, and starts
// again a VM in the way that was stopped but not deleted.
//
// Threads: one VmRestore is driven by one thread.
#pragma once

#include "kube/client.h"
#include "restore/plan.h"
#include "restore/record.h"
#include "restore/spec.h"

#include <functional>
#include <memory>
#include <stop_token>

namespace kvb::restore {

class VolumeUploader;

class VmRestore {
 public:
  using Checkpoint = std::function<Status()>;
  // `uploader`: for volumes from the repository (restore/upload.h); may be
  // null when the plan has none.
  VmRestore(std::shared_ptr<kube::Client> client, const RestoreSpec& spec, const VmToRestore& vm, VmRestoreRecord& rec,
            Checkpoint checkpoint, std::stop_token stop, VolumeUploader* uploader = nullptr);
  ~VmRestore();
  Status run();
  void undo();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvb::restore
