// RestoreTarget: where `repo get` writes a snapshot, and how it is replaced.
//
//   "-"                  standard output, in order
//   a FIFO, a char device  written in order, like a stream
//   a block device       written in place (it holds data: needs overwrite)
//   a regular file       written to a temporary file beside it, then renamed
//                        over it at commit() (needs overwrite when it exists)
//   a missing path       the same, and the rename refuses to replace a file
//                        that appeared meanwhile
//   a symbolic link      refused, naming it and where it points: a restore
//                        never writes through a link
//
// Invariants: until commit() returns ok, an existing file at the target is
// untouched (a damaged repository never truncates a good copy); a target that
// is not committed leaves no temporary file behind (the destructor removes it).
#pragma once

#include "common/error.h"

#include <filesystem>
#include <string>

namespace kvb::repo {

class RestoreTarget {
 public:
  enum class Kind { kStream, kBlockDevice, kFile };

  static Result<RestoreTarget> open(const std::filesystem::path& target, bool overwrite);
  RestoreTarget(RestoreTarget&& o) noexcept;
  RestoreTarget(const RestoreTarget&) = delete;
  RestoreTarget& operator=(const RestoreTarget&) = delete;
  RestoreTarget& operator=(RestoreTarget&&) = delete;
  ~RestoreTarget();

  int fd() const { return fd_; }
  Kind kind() const { return kind_; }
  const std::string& name() const { return name_; }  // for messages: the target, or "standard output"

  // Flushes the data to stable storage and, for a file, renames it into place.
  Status commit();

 private:
  RestoreTarget(int fd, Kind kind, std::string name, bool owned) : fd_(fd), kind_(kind), name_(std::move(name)), owned_(owned) {}

  int fd_ = -1;
  Kind kind_ = Kind::kStream;
  std::string name_;
  bool owned_ = false;              // close fd_ at destruction
  std::filesystem::path target_;    // kFile: the final path
  std::filesystem::path temporary_; // kFile: the file being written; empty once renamed
  bool replace_ = false;            // kFile: rename over an existing file
};

}  // namespace kvb::repo
