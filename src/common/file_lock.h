// Advisory whole-file locks (flock) that a process holds while it runs and
// that the kernel releases when it dies, however it dies: how a running
// backup or restore is told from one whose process is gone.
#pragma once

#include "common/error.h"

#include <filesystem>

namespace kvb {

// Opens (creating, mode 0600, never through a symbolic link) and locks `path`
// exclusively without waiting: the descriptor to close to release it, or
// kConflict when a live process holds it.
Result<int> try_lock_file(const std::filesystem::path& path);

}  // namespace kvb
