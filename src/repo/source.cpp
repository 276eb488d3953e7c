#include "repo/source.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace kvb::repo {

Result<ImageSource> ImageSource::open(const std::filesystem::path& path) {
  if (path == "-") return ImageSource(STDIN_FILENO, false, false, 0, "standard input");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error(Errc::kIo, "cannot open " + path.string() + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return Error(Errc::kIo, "cannot stat " + path.string() + ": " + std::strerror(err));
  }
  if (S_ISREG(st.st_mode)) return ImageSource(fd, true, true, static_cast<uint64_t>(st.st_size), path.string());
  if (S_ISBLK(st.st_mode)) {
    uint64_t size = 0;
    if (::ioctl(fd, BLKGETSIZE64, &size) != 0) {
      int err = errno;
      ::close(fd);
      return Error(Errc::kIo, "cannot read the size of block device " + path.string() + ": " + std::strerror(err));
    }
    return ImageSource(fd, true, false, size, path.string());
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return Error(Errc::kInvalidArgument, path.string() + " is a directory; put stores one file, block device or stream");
  }
  return ImageSource(fd, true, false, 0, path.string());  // a pipe or character device: a stream
}

ImageSource::~ImageSource() {
  if (owned_ && fd_ >= 0) ::close(fd_);
}

Status ImageSource::pieces(size_t piece, const PieceFn& on_piece) {
  if (next_) return pulled_pieces(piece, on_piece);
  const bool stream = size_ == 0;  // a pipe: read to the end, whatever it is
  for (uint64_t at = 0; stream || at < size_;) {
    size_t want = stream ? piece : static_cast<size_t>(std::min<uint64_t>(piece, size_ - at));
    auto buf = std::make_shared<std::string>(want, '\0');
    size_t got = 0;
    while (got < want) {
      ssize_t n = stream ? ::read(fd_, buf->data() + got, want - got) : ::pread(fd_, buf->data() + got, want - got, static_cast<off_t>(at + got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error(Errc::kIo, "cannot read " + name_ + " at offset " + std::to_string(at + got) + ": " + std::strerror(errno));
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    if (!stream && got < want) return Error(Errc::kIo, name_ + " ended at offset " + std::to_string(at + got) + " (it shrank while being read)");
    buf->resize(got);
    if (got > 0 && !on_piece(at, std::move(buf))) return ok();
    at += got;
    if (stream && got < want) {  // end of the stream
      size_ = at;
      return at_end_ ? at_end_() : ok();
    }
  }
  return ok();
}

Status ImageSource::pulled_pieces(size_t piece, const PieceFn& on_piece) {
  uint64_t at = 0;                   // the offset of the piece being filled
  std::shared_ptr<std::string> cur;  // a piece assembled from buffers of other sizes
  for (;;) {
    auto next = next_();
    if (!next) return next.error();
    if (!*next) break;
    std::string& in = **next;
    if (!cur && in.size() == piece) {  // the common case: passed on as it is
      if (!on_piece(at, std::make_shared<std::string>(std::move(in)))) return ok();
      at += piece;
      continue;
    }
    for (size_t used = 0; used < in.size();) {
      if (!cur) {
        cur = std::make_shared<std::string>();
        cur->reserve(piece);
      }
      size_t n = std::min(piece - cur->size(), in.size() - used);
      cur->append(in, used, n);
      used += n;
      if (cur->size() == piece) {
        if (!on_piece(at, std::move(cur))) return ok();
        at += piece;
        cur.reset();
      }
    }
  }
  if (cur && !cur->empty()) {
    const uint64_t n = cur->size();
    if (!on_piece(at, std::move(cur))) return ok();
    at += n;
  }
  size_ = at;
  return ok();
}

Status ImageSource::read_exact(std::span<uint8_t> out, uint64_t at) {
  size_t got = 0;
  while (got < out.size()) {
    if (next_) {  // a pulled source: from the buffer in hand, then the next one
      if (pending_used_ == pending_.size()) {
        auto next = next_();
        if (!next) return next.error();
        if (!*next) return Error(Errc::kIo, name_ + " ended at offset " + std::to_string(at + got) + ", before the changed ranges did");
        pending_ = std::move(**next);
        pending_used_ = 0;
        continue;
      }
      size_t n = std::min(out.size() - got, pending_.size() - pending_used_);
      std::memcpy(out.data() + got, pending_.data() + pending_used_, n);
      pending_used_ += n;
      got += n;
      continue;
    }
    ssize_t n = ::read(fd_, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error(Errc::kIo, "cannot read " + name_ + " at offset " + std::to_string(at + got) + ": " + std::strerror(errno));
    if (n == 0) {
      // The feeder's own error (a failed download) says more than the short read.
      if (at_end_) KVB_CHECK(at_end_());
      return Error(Errc::kIo, name_ + " ended at offset " + std::to_string(at + got) + ", before the changed ranges did");
    }
    got += static_cast<size_t>(n);
  }
  return ok();
}

Status ImageSource::finish(uint64_t at) {
  const std::string more = name_ + " carries more than the changed ranges (" + std::to_string(at) + " bytes)";
  if (next_) {
    if (pending_used_ < pending_.size()) return Error(Errc::kInvalidArgument, more);
    for (;;) {
      auto next = next_();
      if (!next) return next.error();
      if (!*next) return ok();
      if (!(*next)->empty()) return Error(Errc::kInvalidArgument, more);
    }
  }
  uint8_t extra = 0;
  ssize_t n = 0;
  do {
    n = ::read(fd_, &extra, 1);
  } while (n < 0 && errno == EINTR);
  if (n > 0) return Error(Errc::kInvalidArgument, more);
  if (n < 0) return Error(Errc::kIo, "cannot read " + name_ + ": " + std::strerror(errno));
  return at_end_ ? at_end_() : ok();
}

Status ImageSource::ranges(const std::function<bool(uint64_t, uint64_t, bool)>& fn) {
  uint64_t pos = 0;
  while (pos < size_) {
    off_t data = ::lseek(fd_, static_cast<off_t>(pos), SEEK_DATA);
    uint64_t data_at = pos, data_end = size_;
    if (data < 0 && errno == ENXIO) {
      data_at = size_;  // only a hole is left
    } else if (data >= 0) {
      data_at = static_cast<uint64_t>(data);
      off_t hole = ::lseek(fd_, data, SEEK_HOLE);
      data_end = hole < 0 ? size_ : std::min<uint64_t>(static_cast<uint64_t>(hole), size_);
    }  // else: no SEEK_DATA here; everything from pos is data
    if (data_at > pos && !fn(pos, data_at - pos, true)) return ok();
    if (data_at >= size_) break;
    if (!fn(data_at, data_end - data_at, false)) return ok();
    pos = data_end;
  }
  return ok();
}

MappedBytes::~MappedBytes() { ::munmap(base_, mapped_); }

Result<std::shared_ptr<const MappedBytes>> ImageSource::map(uint64_t offset, uint64_t length) const {
  static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  uint64_t start = offset / page * page;
  size_t mapped = static_cast<size_t>(offset + length - start);
  // MAP_POPULATE: one call fills the page table instead of a fault per page.
  void* base = ::mmap(nullptr, mapped, PROT_READ, MAP_SHARED | MAP_POPULATE, fd_, static_cast<off_t>(start));
  if (base == MAP_FAILED) return Error(Errc::kIo, "cannot map " + name_ + " at offset " + std::to_string(offset) + ": " + std::strerror(errno));
  ::madvise(base, mapped, MADV_SEQUENTIAL);
  auto bytes = std::span<const uint8_t>(static_cast<const uint8_t*>(base) + (offset - start), static_cast<size_t>(length));
  return std::make_shared<const MappedBytes>(base, mapped, bytes);
}

}  // namespace kvb::repo
