// Crash-safe file replacement: write to a temporary name in the same directory,
// fsync it, rename over the target, fsync the directory.
//
// Invariant: after write_file_atomic() returns (success or failure) the target
// holds either its complete old content or its complete new content, never a
// mix; a crash leaves at most a stray "<name>.tmp-*" file beside it.
#pragma once

#include "common/error.h"

#include <filesystem>
#include <string>
#include <string_view>

namespace kvb {

// durable=false skips both fsyncs: the replacement is still atomic (rename),
// but may be lost in a crash until the file system is synced (sync_filesystem).
// The file gets exactly `mode`, whatever the umask (backups hold secrets:
// private by default).
Status write_file_atomic(const std::filesystem::path& path, std::string_view data,
                         unsigned mode = 0600, bool durable = true);

// syncfs() the file system holding `path`: every earlier write becomes durable.
Status sync_filesystem(const std::filesystem::path& path);

Result<std::string> read_file(const std::filesystem::path& path);

// Creates the directory and its parents; an existing directory is fine. The
// directories it creates get exactly `mode`, whatever the umask; existing
// ones are left as they are.
Status make_directories(const std::filesystem::path& path, unsigned mode = 0700);

// fsync() the directory so that renames and creations in it are durable.
Status sync_directory(const std::filesystem::path& dir);

}  // namespace kvb
