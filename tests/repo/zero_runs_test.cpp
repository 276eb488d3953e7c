// Zero runs (docs/repository.md, "Holes and zero runs"): a run of at least
// 64 KiB of all-zero 4 KiB blocks is a hole whether the file system had a
// hole there, the file held written zeros, or the image came as a stream or
// as buffers a download handed over; shorter runs and short file holes stay
// inside data chunks. So one image cuts the same chunks however it arrives,
// and a VM disk exported over HTTP (no holes on the wire) costs no chunking
// for its empty space.
#include "common/atomic_file.h"
#include "repo/repository.h"
#include "tests/repo/test_data.h"
#include "tests/support/test_api_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <thread>

namespace kvb::repo {
namespace {
using ::testing::HasSubstr;

const InitOptions kFastInit{1 << 10, 16 << 20};
const Secret kPw("zero-runs");

constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kRunAt = 5 * kMiB, kRunLen = 3 * kMiB;                     // a long zero run
constexpr size_t kShortRunAt = 10 * kMiB + 12288, kShortRunLen = 40 << 10;  // a run under 64 KiB
constexpr size_t kShortHoleAt = 13 * kMiB, kShortHoleLen = 8 << 10;         // in random data
constexpr size_t kSize = 40 * kMiB;                                        // zeros from 24 MiB on

// Random data, the runs above, text, more random data, and zeros at the end.
std::vector<uint8_t> image() {
  auto img = random_data(24 * kMiB, 7);
  std::fill(img.begin() + kRunAt, img.begin() + kRunAt + kRunLen, 0);
  std::string text;
  while (text.size() < 2 * kMiB) text += "virt-launcher: guest agent connected, fs frozen " + std::to_string(text.size()) + "\n";
  std::copy(text.begin(), text.begin() + 2 * kMiB, img.begin() + 8 * kMiB);
  std::fill(img.begin() + kShortRunAt, img.begin() + kShortRunAt + kShortRunLen, 0);
  std::fill(img.begin() + kShortHoleAt, img.begin() + kShortHoleAt + kShortHoleLen, 0);
  img.resize(kSize, 0);
  return img;
}

bool all_zero(const std::vector<uint8_t>& img, size_t at, size_t len) {
  return std::all_of(img.begin() + at, img.begin() + at + len, [](uint8_t b) { return b == 0; });
}

// The image as a sparse file: only 4 KiB blocks with a non-zero byte are written.
void write_sparse(const std::filesystem::path& p, const std::vector<uint8_t>& img) {
  int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(img.size())), 0);
  for (size_t at = 0; at < img.size(); at += 4096) {
    if (all_zero(img, at, 4096)) continue;
    ASSERT_EQ(::pwrite(fd, img.data() + at, 4096, static_cast<off_t>(at)), 4096);
  }
  ::close(fd);
}

// A source that hands the image over in buffers of `piece` bytes, as a download does.
ImageSource pulled(const std::vector<uint8_t>& img, size_t piece) {
  auto at = std::make_shared<size_t>(0);
  return ImageSource::pulled("test://pulled", [&img, piece, at]() -> Result<std::optional<std::string>> {
    if (*at >= img.size()) return std::optional<std::string>();
    size_t n = std::min(piece, img.size() - *at);
    std::string b(reinterpret_cast<const char*>(img.data()) + *at, n);
    *at += n;
    return std::optional<std::string>(std::move(b));
  });
}

struct Fixture {
  testing::TempDir dir;
  std::unique_ptr<Repository> repo;
  Fixture() {
    EXPECT_TRUE(Repository::init(dir / "repo", kPw, kFastInit));
    auto r = Repository::open(dir / "repo", kPw);
    EXPECT_TRUE(r);
    repo = std::move(*r);
  }
  std::vector<Extent> extents(const std::string& id) {
    auto s = repo->find(id);
    EXPECT_TRUE(s) << s.error().message;
    return s ? s->extents : std::vector<Extent>{};
  }
};

TEST(ZeroRuns, OneImageCutsTheSameChunksAsASparseFileADenseFileAStreamOrDownloadedBuffers) {
  Fixture f;
  const auto img = image();
  write_sparse(f.dir / "sparse.img", img);
  f.dir.write("dense.img", bytes_of(img));
  struct stat st {};
  ASSERT_EQ(::stat((f.dir / "sparse.img").c_str(), &st), 0);
  ASSERT_LT(static_cast<uint64_t>(st.st_blocks) * 512, 23 * kMiB) << "this file system keeps holes";

  auto sparse = f.repo->put("sparse", f.dir / "sparse.img");
  ASSERT_TRUE(sparse) << sparse.error().message;
  EXPECT_GE(sparse->hole_bytes, kRunLen + 16 * kMiB) << "file holes are not read";
  const auto want = f.extents(sparse->snapshot);

  // The long run and the empty tail are holes (no blob); the short run and the short hole are not.
  auto hole_at = [&](const std::vector<Extent>& ex, uint64_t at) {
    return std::any_of(ex.begin(), ex.end(), [&](const Extent& e) { return !e.blob && e.offset <= at && at < e.offset + e.length; });
  };
  EXPECT_TRUE(hole_at(want, kRunAt + kMiB));
  EXPECT_TRUE(hole_at(want, 30 * kMiB));
  EXPECT_FALSE(hole_at(want, kShortRunAt + 4096)) << "a zero run under 64 KiB stays in its data chunk";
  EXPECT_FALSE(hole_at(want, kShortHoleAt + 4096)) << "a file hole under 64 KiB is chunked as zeros";

  auto dense = f.repo->put("dense", f.dir / "dense.img");
  ASSERT_TRUE(dense) << dense.error().message;
  EXPECT_EQ(dense->new_chunks, 0u);
  EXPECT_EQ(dense->hole_bytes, 0u) << "a dense file has no holes";
  EXPECT_GE(dense->zero_bytes, kRunLen + 16 * kMiB) << "its zero runs are read, not chunked";
  EXPECT_EQ(f.extents(dense->snapshot), want);

  // A stream (a FIFO, read in whatever pieces the pipe gives).
  auto fifo = f.dir / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::thread writer([&] {
    int fd = ::open(fifo.c_str(), O_WRONLY);
    for (size_t off = 0; off < img.size(); off += 100000) {
      size_t n = std::min<size_t>(100000, img.size() - off);
      if (::write(fd, img.data() + off, n) != static_cast<ssize_t>(n)) break;
    }
    ::close(fd);
  });
  auto stream = f.repo->put("stream", fifo);
  writer.join();
  ASSERT_TRUE(stream) << stream.error().message;
  EXPECT_EQ(f.extents(stream->snapshot), want);

  // Buffers handed over: window-sized (passed on as they are) and odd-sized (re-cut).
  for (size_t piece : {size_t{16} << 20, 3 * kMiB + 1, size_t{4096}}) {
    auto p = f.repo->put("pulled", pulled(img, piece));
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->bytes, img.size());
    EXPECT_EQ(p->new_chunks, 0u) << "buffers of " << piece;
    EXPECT_EQ(f.extents(p->snapshot), want) << "buffers of " << piece;
  }

  for (const char* name : {"sparse", "stream", "pulled"}) {
    GetOptions o;
    o.overwrite = true;
    ASSERT_TRUE(f.repo->get(name, f.dir / "out.img", o));
    EXPECT_TRUE(*read_file(f.dir / "out.img") == bytes_of(img)) << name << " restores other bytes";
  }
  auto report = f.repo->check(true);
  EXPECT_TRUE(report.ok()) << report.problems[0];
}

TEST(ZeroRuns, AnIncrementalPutOfADownloadReusesTheZeroRunsAndTheUnchangedChunks) {
  Fixture f;
  auto img = image();
  auto first = f.repo->put("disk", pulled(img, 16 << 20));
  ASSERT_TRUE(first) << first.error().message;
  std::fill(img.begin() + kRunAt + kMiB, img.begin() + kRunAt + kMiB + 4096, 0x42);  // data inside the long run
  auto second = f.repo->put("disk", pulled(img, 16 << 20));
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->parent, first->snapshot);
  EXPECT_EQ(second->changed_regions, 1u);
  EXPECT_LE(second->new_bytes, 64u << 10) << "only the changed block is new";
  f.dir.write("v2.img", bytes_of(img));
  PutOptions none;
  none.parent = ParentMode::kNone;
  auto again = f.repo->put("disk-full", f.dir / "v2.img", none);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->new_chunks, 0u);
  EXPECT_EQ(f.extents(again->snapshot), f.extents(second->snapshot)) << "the incremental put cut what a full put cuts";
}

TEST(ZeroRuns, ADownloadThatFailsMidwayFailsThePutAndLeavesNoSnapshot) {
  Fixture f;
  const auto img = image();
  auto calls = std::make_shared<int>(0);
  auto failing = ImageSource::pulled("test://failing", [&img, calls]() -> Result<std::optional<std::string>> {
    if (++*calls > 2) return Error(Errc::kTransport, "the exporter went away at byte 33554432");
    return std::optional<std::string>(std::string(reinterpret_cast<const char*>(img.data()) + (*calls - 1) * (16 << 20), 16 << 20));
  });
  auto r = f.repo->put("disk", std::move(failing));
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("the exporter went away at byte 33554432"));
  auto snaps = f.repo->snapshots();
  ASSERT_TRUE(snaps);
  EXPECT_TRUE(snaps->empty()) << "a truncated image never becomes a snapshot";
}

}  // namespace
}  // namespace kvb::repo
