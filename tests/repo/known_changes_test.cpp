// Puts with known changes (docs/repository.md, "Puts with known changes"):
// the stream carries only the changed regions' bytes, the rest is taken from
// the named parent unread; the result restores byte for byte and holds the
// very chunks a full put of the image cuts; a list that does not fit the
// parent or a stream that does not fit the list fails the put, and nothing is
// stored. The same for puts of allocated ranges (a sparse image described by
// its storage).
#include "common/atomic_file.h"
#include "repo/repository.h"
#include "tests/repo/test_data.h"
#include "tests/support/test_api_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

namespace kvb::repo {
namespace {
using ::testing::HasSubstr;

const InitOptions kFastInit{1 << 10, 16 << 20};
const Secret kPw("known-changes");

struct Fixture {
  testing::TempDir dir;
  std::unique_ptr<Repository> repo;
  Fixture() {
    EXPECT_TRUE(Repository::init(dir / "repo", kPw, kFastInit));
    repo = std::move(Repository::open(dir / "repo", kPw).value());
  }
  // Puts the file's bytes as a stream (as a download is fed to the put).
  Result<PutStats> put_stream(const std::string& name, const std::string& file, const PutOptions& o = {}) {
    int fd = ::open((dir / file).c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    auto r = repo->put(name, ImageSource::stream(fd, "export://" + file), o);
    ::close(fd);
    return r;
  }
  std::string restored(const std::string& snapshot) {
    GetOptions o;
    o.overwrite = true;
    auto got = repo->get(snapshot, dir / "restored.img", o);
    EXPECT_TRUE(got) << got.error().message;
    return *read_file(dir / "restored.img");
  }
};

std::vector<uint8_t> disk(uint32_t seed) {
  auto img = random_data(40 << 20, seed);  // 40 regions, 3 windows (the last one short)
  std::fill(img.begin() + (20 << 20), img.begin() + (26 << 20), 0);
  return img;
}

// The bytes of `ranges` of `img`, in order: what a ranged download feeds.
std::string changed_bytes(const std::vector<uint8_t>& img, const std::vector<ByteRange>& ranges) {
  std::string out;
  for (const auto& r : ranges) out.append(img.begin() + static_cast<long>(r.offset), img.begin() + static_cast<long>(r.offset + r.length));
  return out;
}

TEST(KnownChanges, RegionRangesRoundOutToWholeRegionsAndMerge) {
  const uint64_t M = kRegionSize;
  EXPECT_EQ(region_ranges({{5 * M + 10, 100}, {M, 1}, {5 * M + 4096, 65536}, {6 * M - 1, 2}}, 40 * M),
            (std::vector<ByteRange>{{M, M}, {5 * M, 2 * M}}));
  // The last region ends at the image's end; empty and outside ranges vanish.
  EXPECT_EQ(region_ranges({{10 * M + 5, 1}, {3, 0}, {11 * M, 4}}, 10 * M + 100), (std::vector<ByteRange>{{10 * M, 100}}));
}

TEST(KnownChanges, ReadsOnlyTheChangedRegionsAndStoresWhatAFullPutWould) {
  Fixture f;
  auto v1 = disk(1);
  f.dir.write("v1.img", bytes_of(v1));
  auto s1 = f.put_stream("vm/disk", "v1.img");
  ASSERT_TRUE(s1) << s1.error().message;

  // 64 KiB blocks changed in three places: mid-window, across a window edge, in the zeros.
  auto v2 = v1;
  auto change = random_data(64 << 10, 9);
  for (uint64_t at : {uint64_t{(3 << 20) + 70000}, uint64_t{(16 << 20) - 4096}, uint64_t{(22 << 20) + 65536}}) {
    std::copy(change.begin(), change.end(), v2.begin() + static_cast<long>(at));
  }
  auto ranges = region_ranges({{(3 << 20) + 70000, 65536}, {(16 << 20) - 4096, 65536}, {(22 << 20) + 65536, 65536}}, v2.size());
  ASSERT_EQ(ranges.size(), 3u);  // regions 3, 15-16, 22
  f.dir.write("v2.img", bytes_of(v2));
  f.dir.write("delta.bin", changed_bytes(v2, ranges));
  PutOptions o;
  o.known_changes = KnownChanges{s1->snapshot, v2.size(), ranges};
  auto s2 = f.put_stream("vm/disk", "delta.bin", o);
  ASSERT_TRUE(s2) << s2.error().message;
  EXPECT_EQ(s2->parent, s1->snapshot);
  EXPECT_EQ(s2->bytes, v2.size());
  EXPECT_EQ(s2->skipped_bytes, v2.size() - (4u << 20)) << "only the 4 changed regions were read";
  EXPECT_EQ(s2->changed_regions, 4u);
  EXPECT_LE(s2->chunked_bytes, 10u << 20) << "chunking touched the changes and their neighbours only";
  EXPECT_GT(s2->new_chunks, 0u);
  EXPECT_TRUE(f.restored(s2->snapshot) == bytes_of(v2)) << "the put restores the new image byte for byte";
  EXPECT_TRUE(f.restored(s1->snapshot) == bytes_of(v1));

  // A full put of the new image as a stream: no new chunk, the same extents and map.
  f.dir.write("v2.img", bytes_of(v2));
  PutOptions none;
  none.parent = ParentMode::kNone;
  auto full = f.put_stream("vm/disk-full", "v2.img", none);
  ASSERT_TRUE(full) << full.error().message;
  EXPECT_EQ(full->new_chunks, 0u) << "the known-changes put stored exactly the chunks a full put cuts";
  auto a = f.repo->find(s2->snapshot), b = f.repo->find(full->snapshot);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->extents, b->extents);
  ASSERT_TRUE(a->map && b->map);
  EXPECT_TRUE(a->map->regions == b->map->regions) << "unread regions take the parent's prints, which are the image's";
  auto report = f.repo->check(true);
  EXPECT_TRUE(report.ok()) << report.problems[0];

  // Nothing changed: nothing read, everything taken from the parent.
  f.dir.write("empty.bin", "");
  o.known_changes = KnownChanges{s2->snapshot, v2.size(), {}};
  auto s3 = f.put_stream("vm/disk", "empty.bin", o);
  ASSERT_TRUE(s3) << s3.error().message;
  EXPECT_EQ(s3->skipped_bytes, v2.size());
  EXPECT_EQ(s3->chunked_bytes, 0u);
  EXPECT_TRUE(f.restored(s3->snapshot) == bytes_of(v2));
}

TEST(KnownChanges, AListOrStreamThatDoesNotFitFailsAndStoresNothing) {
  Fixture f;
  auto v1 = disk(2);
  f.dir.write("v1.img", bytes_of(v1));
  auto s1 = f.put_stream("vm/disk", "v1.img");
  ASSERT_TRUE(s1);
  const uint64_t M = kRegionSize;
  f.dir.write("one.bin", std::string(M, 'a'));
  PutOptions o;
  auto put = [&](KnownChanges k, const std::string& file = "one.bin") {
    o.known_changes = std::move(k);
    return f.put_stream("vm/disk", file, o);
  };
  auto r = put({s1->snapshot, v1.size(), {{M + 512, M}}});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("not whole map regions"));
  r = put({s1->snapshot, v1.size() + M, {{M, M}}});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("cannot describe a resize"));
  r = put({"0123456789abcdef", v1.size(), {{M, M}}});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("cannot be read"));
  r = put({s1->snapshot, v1.size(), {{M, 2 * M}}});  // the stream holds one region of two
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("ended at offset"));
  f.dir.write("two.bin", std::string(2 * M, 'b'));
  r = put({s1->snapshot, v1.size(), {{M, M}}}, "two.bin");
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("more than the changed ranges"));
  auto snaps = f.repo->snapshots();
  ASSERT_TRUE(snaps);
  EXPECT_EQ(snaps->size(), 1u) << "no failed put left a snapshot";
}

// A sparse image described by its storage (AllocatedRanges): the stream holds
// only the allocated ranges; the rest is stored as holes without a read.
std::vector<ByteRange> allocated_ranges() {
  const uint64_t K = 64 << 10, M = kRegionSize;
  // Unallocated: [5M, 9M), [15M + 64K, 17M) across a window edge, [30M + 128K, 30M + 192K), and the tail from 38M.
  return {{0, 5 * M}, {9 * M, 6 * M + K}, {17 * M, 13 * M + 2 * K}, {30 * M + 3 * K, 8 * M - 3 * K}};
}

TEST(AllocatedRanges, TheUnallocatedRangesAreHolesAndTheChunksAreAFullPuts) {
  Fixture f;
  auto v = disk(3);
  const auto data = allocated_ranges();
  uint64_t allocated = 0, last = 0;
  for (const auto& r : data) {
    std::fill(v.begin() + static_cast<long>(last), v.begin() + static_cast<long>(r.offset), 0);
    allocated += r.length;
    last = r.offset + r.length;
  }
  std::fill(v.begin() + static_cast<long>(last), v.end(), 0);
  f.dir.write("allocated.bin", changed_bytes(v, data));
  PutOptions o;
  o.allocated = AllocatedRanges{v.size(), data};
  auto s1 = f.put_stream("vm/disk", "allocated.bin", o);
  ASSERT_TRUE(s1) << s1.error().message;
  EXPECT_EQ(s1->bytes, v.size());
  EXPECT_GE(s1->hole_bytes, v.size() - allocated) << "the unallocated ranges were holes, never read";
  EXPECT_TRUE(f.restored(s1->snapshot) == bytes_of(v)) << "the put restores the image byte for byte";

  // A full put of the same image: no new chunk, the same extents.
  f.dir.write("v.img", bytes_of(v));
  PutOptions none;
  none.parent = ParentMode::kNone;
  auto full = f.put_stream("vm/disk-full", "v.img", none);
  ASSERT_TRUE(full) << full.error().message;
  EXPECT_EQ(full->new_chunks, 0u);
  auto a = f.repo->find(s1->snapshot), b = f.repo->find(full->snapshot);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->extents, b->extents);

  // The next copy of the series, allocated ranges again, finds its parent and
  // reuses the unchanged regions by fingerprint.
  auto v2 = v;
  auto change = random_data(64 << 10, 11);
  std::copy(change.begin(), change.end(), v2.begin() + (2 << 20));
  f.dir.write("allocated2.bin", changed_bytes(v2, data));
  auto s2 = f.put_stream("vm/disk", "allocated2.bin", o);
  ASSERT_TRUE(s2) << s2.error().message;
  EXPECT_EQ(s2->parent, s1->snapshot);
  EXPECT_GT(s2->reused_bytes, allocated / 2);
  EXPECT_TRUE(f.restored(s2->snapshot) == bytes_of(v2));
}

TEST(AllocatedRanges, AVolumeWithNothingAllocatedIsAllHoles) {
  Fixture f;
  const uint64_t size = 20 << 20;  // two windows, the last one short
  f.dir.write("none.bin", "");
  PutOptions o;
  o.allocated = AllocatedRanges{size, {}};
  auto s = f.put_stream("vm/blank", "none.bin", o);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->bytes, size);
  EXPECT_EQ(s->hole_bytes, size);
  EXPECT_EQ(s->new_chunks, 0u);
  EXPECT_TRUE(f.restored(s->snapshot) == std::string(size, '\0'));
}

TEST(AllocatedRanges, AListOrStreamThatDoesNotFitFailsAndStoresNothing) {
  Fixture f;
  const uint64_t M = kRegionSize;
  f.dir.write("one.bin", std::string(M, 'a'));
  PutOptions o;
  auto put = [&](AllocatedRanges a, const std::string& file = "one.bin") {
    o.allocated = std::move(a);
    return f.put_stream("vm/disk", file, o);
  };
  auto r = put({8 * M, {{2 * M, M}, {M, M}}});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("out of order"));
  r = put({8 * M, {{7 * M, 2 * M}}});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("outside the"));
  r = put({8 * M, {{M, 2 * M}}});  // the stream holds one region of two
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("ended at offset"));
  f.dir.write("two.bin", std::string(2 * M, 'b'));
  r = put({8 * M, {{M, M}}}, "two.bin");
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("more than"));
  o.known_changes = KnownChanges{"0123", 8 * M, {}};
  r = put({8 * M, {{M, M}}});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("not both"));
  auto snaps = f.repo->snapshots();
  ASSERT_TRUE(snaps);
  EXPECT_EQ(snaps->size(), 0u) << "no failed put left a snapshot";
}

}  // namespace
}  // namespace kvb::repo
