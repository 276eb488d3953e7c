// Reading the files a user hands kvbackup (kubeconfigs and the files they
// name, rule files, scenario files, password files, AWS configuration) with a
// size limit.
//
// A mistaken path (/dev/zero, a FIFO nobody closes, a disk image) must give
// a clear error, not exhaust memory: the file is read in pieces, and reading
// stops one byte past the limit, whatever kind of file it is (regular, FIFO,
// character device). The error names the file, what it was read as, and the
// limit.
//
// Invariant: never holds more than limit + one read buffer of the file.
#pragma once

#include "common/error.h"

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

namespace kvb {

// The limit for configuration documents (rules, kubeconfigs, scenarios,
// certificates, tokens, passwords): far above any real one.
inline constexpr size_t kConfigFileLimit = size_t{4} << 20;

// `what` says what the file was read as ("rule file", "kubeconfig"); errors
// read "<what> <path>: ...". A missing file is Errc::kNotFound, a file over
// the limit Errc::kInvalidArgument, other failures Errc::kIo.
Result<std::string> read_file_bounded(const std::filesystem::path& path, std::string_view what,
                                      size_t limit = kConfigFileLimit);

}  // namespace kvb
