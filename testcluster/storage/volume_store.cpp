#include "testcluster/storage/volume_store.h"

#include "common/hex.h"
#include <openssl/evp.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace kvb::testcluster {
namespace fs = std::filesystem;

namespace {

constexpr int64_t kBlock = 4096;

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

Error io_error(const std::string& what, const fs::path& p) {
  return Error(Errc::kIo, what + " " + p.string() + ": " + std::strerror(errno));
}

Status write_all(int fd, const char* data, size_t n, off_t off, const fs::path& p) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, data, n, off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return io_error("cannot write", p);
    data += w;
    n -= static_cast<size_t>(w);
    off += w;
  }
  return ok();
}

// splitmix64: a cheap deterministic stream from a seed.
uint64_t mix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t seed_of(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

// Writes the deterministic blocks of `label` at the guest's offsets.
Status write_blocks(const fs::path& p, int64_t size, const std::string& label) {
  if (size < kBlock) return ok();
  Fd f(::open(p.c_str(), O_WRONLY | O_CLOEXEC));
  if (f.fd < 0) return io_error("cannot open", p);
  const int64_t offsets[] = {0, int64_t{1} << 20, (size / 2) / kBlock * kBlock, size - kBlock};
  std::array<uint64_t, kBlock / 8> block{};
  for (size_t i = 0; i < std::size(offsets); ++i) {
    int64_t off = offsets[i];
    if (off + kBlock > size) continue;
    uint64_t s = seed_of(label + "#" + std::to_string(i));
    for (auto& w : block) w = mix(s);
    KVB_CHECK(write_all(f.fd, reinterpret_cast<const char*>(block.data()), kBlock, off, p));
  }
  return ok();
}

Status make_sparse(const fs::path& p, int64_t size) {
  std::error_code ec;
  fs::create_directories(p.parent_path(), ec);
  Fd f(::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (f.fd < 0) return io_error("cannot create", p);
  if (::ftruncate(f.fd, size) != 0) return io_error("cannot size", p);
  return ok();
}

Status grow(const fs::path& p, int64_t size) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return io_error("cannot stat", p);
  if (st.st_size >= size) return ok();
  if (::truncate(p.c_str(), size) != 0) return io_error("cannot grow", p);
  return ok();
}

int64_t size_of_file(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : 0;
}

const std::vector<char>& zeros() {
  static const std::vector<char> z(size_t{1} << 20, 0);
  return z;
}

}  // namespace

Status copy_sparse(const fs::path& from, const fs::path& to) {
  Fd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.fd < 0) return io_error("cannot open", from);
  std::error_code ec;
  fs::create_directories(to.parent_path(), ec);
  Fd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (out.fd < 0) return io_error("cannot create", to);
  if (::ioctl(out.fd, FICLONE, in.fd) == 0) return ok();
  struct stat st {};
  if (::fstat(in.fd, &st) != 0) return io_error("cannot stat", from);
  const off_t size = st.st_size;
  if (::ftruncate(out.fd, size) != 0) return io_error("cannot size", to);
  std::vector<char> buf(size_t{1} << 20);
  bool kernel_copy = true;
  off_t pos = 0;
  while (pos < size) {
    off_t data = ::lseek(in.fd, pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole remains
      return io_error("cannot seek", from);
    }
    off_t hole = ::lseek(in.fd, data, SEEK_HOLE);
    if (hole < 0) return io_error("cannot seek", from);
    for (off_t off = data; off < hole;) {
      // In the kernel where it can (no copy through this process), else through the buffer.
      loff_t src = off, dst = off;
      ssize_t r = kernel_copy ? ::copy_file_range(in.fd, &src, out.fd, &dst, static_cast<size_t>(hole - off), 0) : -1;
      if (r < 0 && kernel_copy && errno != EINTR) kernel_copy = false;
      if (r < 0 && !kernel_copy) {
        size_t n = static_cast<size_t>(std::min<off_t>(hole - off, static_cast<off_t>(buf.size())));
        r = ::pread(in.fd, buf.data(), n, off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return io_error("cannot read", from);
        KVB_CHECK(write_all(out.fd, buf.data(), static_cast<size_t>(r), off, to));
      }
      if (r == 0) return io_error("cannot read (the file shrank)", from);
      if (r > 0) off += r;
    }
    pos = hole;
  }
  return ok();
}

Result<std::string> sparse_sha256(const fs::path& p) {
  Fd in(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.fd < 0) return io_error("cannot open", p);
  struct stat st {};
  if (::fstat(in.fd, &st) != 0) return io_error("cannot stat", p);
  const off_t size = st.st_size;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  const auto& z = zeros();
  auto hash_zeros = [&](off_t n) {
    while (n > 0) {
      size_t k = static_cast<size_t>(std::min<off_t>(n, static_cast<off_t>(z.size())));
      EVP_DigestUpdate(ctx.get(), z.data(), k);
      n -= static_cast<off_t>(k);
    }
  };
  std::vector<char> buf(size_t{1} << 20);
  off_t pos = 0;
  while (pos < size) {
    off_t data = ::lseek(in.fd, pos, SEEK_DATA);
    if (data < 0 && errno != ENXIO) return io_error("cannot seek", p);
    if (data < 0) data = size;
    hash_zeros(data - pos);
    if (data >= size) break;
    off_t hole = ::lseek(in.fd, data, SEEK_HOLE);
    if (hole < 0) return io_error("cannot seek", p);
    for (off_t off = data; off < hole;) {
      size_t n = static_cast<size_t>(std::min<off_t>(hole - off, static_cast<off_t>(buf.size())));
      ssize_t r = ::pread(in.fd, buf.data(), n, off);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return io_error("cannot read", p);
      EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(r));
      off += r;
    }
    pos = hole;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  return hex_encode({md, len});
}

VolumeStore::VolumeStore(fs::path state_dir) : root_(std::move(state_dir)) {}

fs::path VolumeStore::claim_path(const std::string& ns, const std::string& claim) const {
  return root_ / "volumes" / ns / (claim + ".img");
}

fs::path VolumeStore::snapshot_path(const std::string& handle) const { return root_ / "snapshots" / (handle + ".img"); }

Status VolumeStore::create_claim(const std::string& ns, const std::string& claim, int64_t size, int64_t generation) {
  std::error_code ec;
  fs::remove(claim_path(ns, claim), ec);  // one left over may be a link to a snapshot: never truncated in place
  KVB_CHECK(make_sparse(claim_path(ns, claim), size));
  claims_[key(ns, claim)] = FileState{size, generation, std::nullopt};
  return ok();
}

Status VolumeStore::restore_claim(const std::string& ns, const std::string& claim, const std::string& handle, int64_t size,
                                  int64_t generation) {
  if (!has_snapshot(handle)) return Error(Errc::kNotFound, "the storage snapshot " + handle + " has no bytes");
  fs::path p = claim_path(ns, claim);
  std::error_code ec;
  fs::create_directories(p.parent_path(), ec);
  fs::remove(p, ec);  // one left over
  if (size <= snapshot_size(handle) && ::link(snapshot_path(handle).c_str(), p.c_str()) == 0) {
    claims_[key(ns, claim)] = FileState{size_of_file(p), generation, std::nullopt, false, true};
    return ok();
  }
  KVB_CHECK(copy_sparse(snapshot_path(handle), p));
  KVB_CHECK(grow(p, size));
  claims_[key(ns, claim)] = FileState{size_of_file(p), generation, std::nullopt};
  return ok();
}

Status VolumeStore::clone_claim(const std::string& ns, const std::string& claim, const std::string& src_ns,
                                const std::string& src_claim, int64_t size, int64_t generation) {
  if (!has_claim(src_ns, src_claim)) return Error(Errc::kNotFound, "the source claim " + src_ns + "/" + src_claim + " has no bytes");
  fs::path p = claim_path(ns, claim);
  std::error_code ec;
  fs::remove(p, ec);  // one left over may be a link to a snapshot: never truncated in place
  KVB_CHECK(copy_sparse(claim_path(src_ns, src_claim), p));
  KVB_CHECK(grow(p, size));
  claims_[key(ns, claim)] = FileState{size_of_file(p), generation, std::nullopt};
  return ok();
}

void VolumeStore::remove_claim(const std::string& ns, const std::string& claim) {
  std::error_code ec;
  fs::remove(claim_path(ns, claim), ec);
  claims_.erase(key(ns, claim));
}

void VolumeStore::claim_written(const std::string& ns, const std::string& claim) {
  if (auto it = claims_.find(key(ns, claim)); it != claims_.end()) {
    it->second.sha256.reset();
    it->second.writer_out = false;
  }
}

Result<fs::path> VolumeStore::writable_claim_path(const std::string& ns, const std::string& claim) {
  auto it = claims_.find(key(ns, claim));
  if (it == claims_.end()) return Error(Errc::kNotFound, "claim " + key(ns, claim) + " has no bytes");
  KVB_CHECK(unshare(ns, claim, it->second));
  it->second.writer_out = true;
  return claim_path(ns, claim);
}

Status VolumeStore::unshare(const std::string& ns, const std::string& claim, FileState& st) {
  if (!st.shared) return ok();
  const fs::path p = claim_path(ns, claim), own = p.string() + ".unshare";
  KVB_CHECK(copy_sparse(p, own));
  if (::rename(own.c_str(), p.c_str()) != 0) return io_error("cannot rename over", p);
  st.shared = false;
  return ok();
}

void VolumeStore::set_external_writer(const std::string& ns, const std::string& claim, bool external) {
  if (auto it = claims_.find(key(ns, claim)); it != claims_.end()) it->second.external = external;
}

bool VolumeStore::has_claim(const std::string& ns, const std::string& claim) const { return claims_.count(key(ns, claim)) > 0; }

Status VolumeStore::write_generation(const std::string& ns, const std::string& claim, const std::string& writer,
                                     int64_t generation) {
  auto it = claims_.find(key(ns, claim));
  if (it == claims_.end()) return Error(Errc::kNotFound, "claim " + key(ns, claim) + " has no bytes");
  if (it->second.external || it->second.written_generation == generation) return ok();
  KVB_CHECK(unshare(ns, claim, it->second));
  KVB_CHECK(write_blocks(claim_path(ns, claim), it->second.size, writer + "|" + key(ns, claim) + "|" + std::to_string(generation)));
  it->second.written_generation = generation;
  it->second.sha256.reset();
  return ok();
}

Status VolumeStore::write_import(const std::string& ns, const std::string& claim, const std::string& source) {
  auto it = claims_.find(key(ns, claim));
  if (it == claims_.end()) return Error(Errc::kNotFound, "claim " + key(ns, claim) + " has no bytes");
  KVB_CHECK(unshare(ns, claim, it->second));
  KVB_CHECK(write_blocks(claim_path(ns, claim), it->second.size, "import|" + source));
  it->second.sha256.reset();
  return ok();
}

Status VolumeStore::cut(const std::string& ns, const std::string& claim, const std::string& handle, const Copier& copier) {
  if (!has_claim(ns, claim)) return Error(Errc::kNotFound, "claim " + key(ns, claim) + " has no bytes");
  fs::path to = snapshot_path(handle);
  std::error_code ec;
  fs::create_directories(to.parent_path(), ec);
  FileState& st = claims_[key(ns, claim)];
  fs::remove(to, ec);
  if (!copier && !st.external && !st.writer_out && ::link(claim_path(ns, claim).c_str(), to.c_str()) == 0) {
    st.shared = true;  // copied before the claim's next write
  } else {
    KVB_CHECK(copier ? copier(claim_path(ns, claim), to) : copy_sparse(claim_path(ns, claim), to));
  }
  snapshots_[handle] = FileState{size_of_file(to), std::nullopt, std::nullopt};
  return ok();
}

void VolumeStore::remove_snapshot(const std::string& handle) {
  std::error_code ec;
  fs::remove(snapshot_path(handle), ec);
  snapshots_.erase(handle);
}

bool VolumeStore::has_snapshot(const std::string& handle) const { return snapshots_.count(handle) > 0; }

Result<std::string> VolumeStore::hash(const fs::path& p, FileState& st) {
  if (!st.sha256) {
    auto h = sparse_sha256(p);
    if (!h) return h.error();
    st.sha256 = *h;
  }
  return *st.sha256;
}

Result<std::string> VolumeStore::claim_sha256(const std::string& ns, const std::string& claim) {
  auto it = claims_.find(key(ns, claim));
  if (it == claims_.end()) return Error(Errc::kNotFound, "claim " + key(ns, claim) + " has no bytes");
  return hash(claim_path(ns, claim), it->second);
}

Result<std::string> VolumeStore::snapshot_sha256(const std::string& handle) {
  auto it = snapshots_.find(handle);
  if (it == snapshots_.end()) return Error(Errc::kNotFound, "snapshot " + handle + " has no bytes");
  return hash(snapshot_path(handle), it->second);
}

int64_t VolumeStore::claim_size(const std::string& ns, const std::string& claim) const {
  auto it = claims_.find(key(ns, claim));
  return it == claims_.end() ? 0 : it->second.size;
}

int64_t VolumeStore::snapshot_size(const std::string& handle) const {
  auto it = snapshots_.find(handle);
  return it == snapshots_.end() ? 0 : it->second.size;
}

void VolumeStore::clear() {
  std::error_code ec;
  fs::remove_all(root_ / "volumes", ec);
  fs::remove_all(root_ / "snapshots", ec);
  claims_.clear();
  snapshots_.clear();
}

}  // namespace kvb::testcluster
