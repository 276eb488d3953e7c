#include "common/writeback.h"

#include <fcntl.h>

namespace kvb {

void WritebackBehind::wrote_up_to(uint64_t end) {
  if (end < from_ + step_) return;
  (void)::sync_file_range(fd_, static_cast<off_t>(from_), static_cast<off_t>(end - from_), SYNC_FILE_RANGE_WRITE);
  from_ = end;
}

}  // namespace kvb
