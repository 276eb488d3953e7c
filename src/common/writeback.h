// WritebackBehind: starts the kernel's writeback of a file behind its writer
// (sync_file_range SYNC_FILE_RANGE_WRITE over what was written since the last
// start, every `step` bytes of the file), so the disk writes while the writer
// works and a final fsync waits for the tail only.
//
// For writers that go forward through a file (skipping holes is fine). A hint:
// it never fails and never waits for the disk to finish.
#pragma once

#include <cstdint>

namespace kvb {

class WritebackBehind {
 public:
  explicit WritebackBehind(int fd, uint64_t step = uint64_t{32} << 20) : fd_(fd), step_(step) {}
  // The file is written up to byte `end`.
  void wrote_up_to(uint64_t end);

 private:
  int fd_;
  uint64_t step_;
  uint64_t from_ = 0;  // where the next writeback starts
};

}  // namespace kvb
