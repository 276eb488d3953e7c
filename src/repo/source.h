// ImageSource: the bytes a put stores: a regular file, a block device or a
// stream ("-", standard input).
//
// A regular file is seen as data ranges and holes (lseek SEEK_DATA/SEEK_HOLE;
// a file system without them yields one data range) and its data is mapped;
// holes are never read. Block devices and streams are all data, read in order.
//
// Invariants: segments are reported in order, contiguous from offset 0; the
// last one ends at the source's end (for a stream, where read() returned 0).
#pragma once

#include "common/error.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace kvb::repo {

// A read-only mapping of part of a regular file; unmapped when the last holder lets go.
class MappedBytes {
 public:
  MappedBytes(void* base, size_t mapped, std::span<const uint8_t> bytes) : base_(base), mapped_(mapped), bytes_(bytes) {}
  MappedBytes(const MappedBytes&) = delete;
  MappedBytes& operator=(const MappedBytes&) = delete;
  ~MappedBytes();
  std::span<const uint8_t> bytes() const { return bytes_; }

 private:
  void* base_;
  size_t mapped_;
  std::span<const uint8_t> bytes_;
};

class ImageSource {
 public:
  static Result<ImageSource> open(const std::filesystem::path& path);
  // A stream the caller feeds through `fd` (a socket or pipe; read to its end,
  // not closed here), named `name` in the snapshot (e.g. where it was
  // downloaded from). At the end of the stream `at_end` says whether it is
  // complete: an error (the download failed) fails the put, so that a
  // truncated image never becomes a snapshot.
  static ImageSource stream(int fd, std::string name, std::function<Status()> at_end = {}) {
    ImageSource s(fd, false, false, 0, std::move(name));
    s.at_end_ = std::move(at_end);
    return s;
  }
  // A stream of buffers the caller hands over in order (a download passing on
  // the ranges it fetched; no socket or pipe in between): `next` returns the
  // next buffer, nullopt at the end, or an error, which fails the put.
  // Buffers of exactly the put's window size are used without a copy.
  using Next = std::function<Result<std::optional<std::string>>()>;
  static ImageSource pulled(std::string name, Next next) {
    ImageSource s(-1, false, false, 0, std::move(name));
    s.next_ = std::move(next);
    return s;
  }
  ImageSource(ImageSource&& o) noexcept
      : fd_(o.fd_), owned_(o.owned_), regular_(o.regular_), size_(o.size_), name_(std::move(o.name_)), at_end_(std::move(o.at_end_)),
        next_(std::move(o.next_)), pending_(std::move(o.pending_)), pending_used_(o.pending_used_) {
    o.fd_ = -1;
  }
  ImageSource(const ImageSource&) = delete;
  ImageSource& operator=(const ImageSource&) = delete;
  ImageSource& operator=(ImageSource&&) = delete;
  ~ImageSource();

  uint64_t size() const { return size_; }  // 0 for a stream (unknown)
  const std::string& name() const { return name_; }

  // Reads the whole source in order (for block devices and streams; put maps
  // regular files instead) and hands over pieces of exactly `piece` bytes at
  // offsets 0, piece, 2 * piece, ... (the last may be shorter), each in a
  // buffer of its own: on_piece(offset, bytes). Stops at the first error, or
  // when on_piece returns false (then returns ok()).
  using PieceFn = std::function<bool(uint64_t offset, std::shared_ptr<std::string> bytes)>;
  Status pieces(size_t piece, const PieceFn& on_piece);

  // A fed or pulled stream read piece by piece (a put with known changes):
  // fills `out` whole, else an error naming the offset where the stream ended.
  Status read_exact(std::span<uint8_t> out, uint64_t at);
  // A fed stream that must end here: more bytes are an error; then at_end.
  Status finish(uint64_t at);

  // Regular files can be mapped instead of read: no copy through a buffer.
  bool mappable() const { return regular_; }
  // The data ranges (hole = false) and holes of a regular file, in order; stops when fn returns false.
  Status ranges(const std::function<bool(uint64_t offset, uint64_t length, bool hole)>& fn);
  // Maps [offset, offset + length) of a regular file.
  Result<std::shared_ptr<const MappedBytes>> map(uint64_t offset, uint64_t length) const;

 private:
  ImageSource(int fd, bool owned, bool regular, uint64_t size, std::string name)
      : fd_(fd), owned_(owned), regular_(regular), size_(size), name_(std::move(name)) {}

  int fd_ = -1;
  bool owned_ = false;
  bool regular_ = false;
  uint64_t size_ = 0;
  Status pulled_pieces(size_t piece, const PieceFn& on_piece);

  std::string name_;
  std::function<Status()> at_end_;  // a fed stream: is it complete?
  Next next_;                       // a pulled source
  std::string pending_;             // read_exact of a pulled source: the buffer in hand
  size_t pending_used_ = 0;
};

}  // namespace kvb::repo
