// The file-system-consistency oracle for copies of the guest's ext4 disk.
//
// What separates a copy taken while the guest was frozen from one taken under
// the writer without a freeze is the journal: ext4 checkpoints metadata in
// place, so `e2fsck -fn` passes on both; an unfrozen copy has the
// needs_recovery feature set (dumpe2fs -h), a frozen one has not. After replay
// (e2fsck -fy on a scratch copy) files can be read with debugfs.
//
// Invariants: inspect() never writes to the copy; replay() works on a sparse
// scratch copy the caller names, never on the original; every tool runs as an
// argv vector with a timeout.
#pragma once

#include "common/error.h"

#include <filesystem>
#include <string>

namespace kvb::testcluster::guest {

struct Ext4Check {
  bool needs_recovery = false;  // the journal holds transactions not yet replayed
  bool has_journal = false;
  int fsck_exit = -1;           // e2fsck -fn's exit code (0 clean, 4 errors left, ...)
  std::string fsck_output;      // its combined output, for messages
  // Clean as a frozen copy must be: a journal with nothing to replay and a
  // read-only fsck without errors.
  bool clean() const { return has_journal && !needs_recovery && fsck_exit == 0; }
};

// Whether the file holds an ext2/3/4 superblock (dumpe2fs -h succeeds).
Result<bool> has_ext4(const std::filesystem::path& image);

// dumpe2fs -h and e2fsck -fn on a raw ext4 image (read-only).
Result<Ext4Check> inspect_ext4(const std::filesystem::path& image);

// Copies image to scratch (sparse) and replays its journal there (e2fsck -fy);
// returns e2fsck's exit code (0 or 1 after a replay is success; >= 4 is not).
Result<int> replay_into(const std::filesystem::path& image, const std::filesystem::path& scratch);

// The content of an absolute path inside an ext4 image (debugfs -R "cat PATH").
// path may hold only [A-Za-z0-9._/-] (it is one debugfs request).
Result<std::string> read_ext4_file(const std::filesystem::path& image, const std::string& path);

}  // namespace kvb::testcluster::guest
