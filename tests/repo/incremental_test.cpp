// Incremental puts through the image map (docs/repository.md, "Incremental
// puts"): unchanged regions reuse the parent's chunks unread by the chunker;
// a changed region is re-chunked with the boundaries a full put would cut, so
// it dedups against another image with the same change; restores are
// byte-identical; a forged map is caught by check --read-data and put
// --rehash; no parent, an old parent without a map and a broken map fall back
// to a full put and say why. Restores check the image against its map
// (repo/region_check.h): extents out of place and a map that does not match
// stop a restore at the region, with nothing of it written.
#include "common/atomic_file.h"
#include "common/base64.h"
#include "common/time.h"
#include "repo/layout.h"
#include "repo/repository.h"
#include "tests/repo/test_data.h"
#include "tests/support/test_api_server.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

namespace kvb::repo {
namespace {
using ::testing::HasSubstr;
namespace json = boost::json;

const InitOptions kFastInit{1 << 10, 16 << 20};
const Secret kPw("incremental");

GetOptions replace() {
  GetOptions o;
  o.overwrite = true;
  return o;
}
// Now, as put stamps a snapshot: a forged one is the newest of its series until the next put.
std::string now() { return format_rfc3339(WallClock::now(), TimePrecision::kNanos); }

PutOptions with_parent(ParentMode m) {
  PutOptions o;
  o.parent = m;
  return o;
}

// The master key, as someone holding the password has it: to read and forge manifests.
MasterKey master_key(const std::filesystem::path& repo) {
  for (const auto& e : std::filesystem::directory_iterator(repo / "keys")) {
    auto k = json::parse(*read_file(e.path())).as_object();
    KdfParams kdf;
    kdf.n = k.at("n").to_number<uint64_t>();
    kdf.r = k.at("r").to_number<uint32_t>();
    kdf.p = k.at("p").to_number<uint32_t>();
    auto salt = *base64_decode(k.at("salt").as_string());
    std::memcpy(kdf.salt.data(), salt.data(), kdf.salt.size());
    auto data = *base64_decode(k.at("data").as_string());
    auto key = unwrap_master_key(as_bytes(data), kPw, kdf);
    if (key) return *key;
  }
  ADD_FAILURE() << "no key file opens";
  return {};
}

struct Fixture {
  testing::TempDir dir;
  std::unique_ptr<Repository> repo;
  std::shared_ptr<location::Location> loc;
  Fixture() {
    EXPECT_TRUE(Repository::init(dir / "repo", kPw, kFastInit));
    auto r = Repository::open(dir / "repo", kPw);
    EXPECT_TRUE(r);
    repo = std::move(*r);
    loc = location::open_local(dir / "repo", location::OpenMode::kExisting).value();
  }
  Snapshot load(const std::string& id) {
    auto s = load_snapshot(*loc, master_key(dir / "repo").encryption, id, true);
    EXPECT_TRUE(s) << s.error().message;
    return s ? *s : Snapshot{};
  }
  void expect_restores(const std::string& snapshot, const std::vector<uint8_t>& image) {
    auto got = repo->get(snapshot, dir / "restored.img", replace());
    ASSERT_TRUE(got) << got.error().message;
    EXPECT_TRUE(*read_file(dir / "restored.img") == bytes_of(image)) << "snapshot " << snapshot << " restores other bytes";
  }
};

// A disk-like image: random data, a run of zeros, text.
std::vector<uint8_t> base_image(uint32_t seed) {
  auto img = random_data(24 << 20, seed);
  std::fill(img.begin() + (8 << 20), img.begin() + (11 << 20), 0);
  std::string text;
  while (text.size() < (4u << 20)) text += "kubelet[812]: synced volume snapshot " + std::to_string(text.size()) + "\n";
  std::copy(text.begin(), text.begin() + (4 << 20), img.begin() + (16 << 20));
  return img;
}

TEST(IncrementalPut, ReusesUnchangedRegionsAndCutsChangedOnesLikeAFullPut) {
  Fixture f;
  auto v1 = base_image(1);
  f.dir.write("v1.img", bytes_of(v1));
  auto s1 = f.repo->put("disk", f.dir / "v1.img");
  ASSERT_TRUE(s1) << s1.error().message;
  EXPECT_THAT(s1->full_reason, HasSubstr("no earlier snapshot named disk"));
  EXPECT_EQ(s1->regions, 24u);
  EXPECT_EQ(s1->reused_bytes, 0u);

  // 8 KiB changed inside region 12 and 4 KiB at the start of region 17 (in the text).
  auto v2 = v1;
  auto change = random_data(8 << 10, 99);
  std::copy(change.begin(), change.end(), v2.begin() + (12 << 20) + 5000);
  std::fill(v2.begin() + (17 << 20), v2.begin() + (17 << 20) + 4096, 'x');
  f.dir.write("v2.img", bytes_of(v2));
  auto s2 = f.repo->put("disk", f.dir / "v2.img");
  ASSERT_TRUE(s2) << s2.error().message;
  EXPECT_EQ(s2->parent, s1->snapshot);
  EXPECT_TRUE(s2->full_reason.empty()) << s2->full_reason;
  EXPECT_EQ(s2->changed_regions, 2u);
  EXPECT_GE(s2->reused_bytes, 20u << 20) << "every region but the two changed ones is taken from the parent";
  EXPECT_LE(s2->chunked_bytes, 4u << 20) << "only the chunks around the changes are cut and hashed";
  EXPECT_GT(s2->new_chunks, 0u);
  EXPECT_LE(s2->new_bytes, 3u << 20);

  // The same image put in full: the very same chunks (the boundaries around
  // the changes are content-defined and resynchronise with the parent's).
  auto full = f.repo->put("disk-full", f.dir / "v2.img", with_parent(ParentMode::kNone));
  ASSERT_TRUE(full);
  EXPECT_EQ(full->reused_bytes, 0u);
  EXPECT_EQ(full->chunked_bytes + full->zero_bytes, v2.size()) << "every data byte chunked; the 3 MiB zero run read, not chunked";
  EXPECT_EQ(full->new_chunks, 0u) << "an incremental put stored exactly the chunks a full put cuts";
  EXPECT_EQ(f.load(s2->snapshot).extents, f.load(full->snapshot).extents);

  f.expect_restores(s1->snapshot, v1);
  f.expect_restores(s2->snapshot, v2);
  auto report = f.repo->check(true);
  EXPECT_TRUE(report.ok()) << report.problems[0];

  // An unchanged image: everything reused, nothing cut.
  auto s3 = f.repo->put("disk", f.dir / "v2.img");
  ASSERT_TRUE(s3);
  EXPECT_EQ(s3->reused_bytes, v2.size());
  EXPECT_EQ(s3->chunked_bytes, 0u);
  EXPECT_EQ(s3->new_chunks, 0u);
  f.expect_restores(s3->snapshot, v2);
}

TEST(IncrementalPut, AChangedRegionDedupsAgainstAnotherImageWithTheSameChange) {
  Fixture f;
  // Two VMs with different disks get the same 4 MiB file at the same place.
  auto a1 = base_image(1), b1 = base_image(2);
  f.dir.write("a1.img", bytes_of(a1));
  f.dir.write("b1.img", bytes_of(b1));
  ASSERT_TRUE(f.repo->put("vm-a", f.dir / "a1.img"));
  ASSERT_TRUE(f.repo->put("vm-b", f.dir / "b1.img"));
  auto package = random_data(4 << 20, 7);
  auto a2 = a1, b2 = b1;
  std::copy(package.begin(), package.end(), a2.begin() + (13 << 20) + 12345);
  std::copy(package.begin(), package.end(), b2.begin() + (13 << 20) + 12345);
  f.dir.write("a2.img", bytes_of(a2));
  f.dir.write("b2.img", bytes_of(b2));
  auto b = f.repo->put("vm-b", f.dir / "b2.img");
  ASSERT_TRUE(b);
  EXPECT_GT(b->reused_bytes, 16u << 20);
  EXPECT_GE(b->new_bytes, package.size()) << "the file is new to the repository";
  auto a = f.repo->put("vm-a", f.dir / "a2.img");
  ASSERT_TRUE(a);
  EXPECT_GT(a->reused_bytes, 16u << 20);
  EXPECT_GE(a->chunked_bytes, package.size());
  // Only the chunks at the file's two edges hold bytes of a's own disk.
  EXPECT_LT(a->new_bytes, package.size() / 2) << "the re-chunked region dedups against vm-b's";
  f.expect_restores("vm-a", a2);
  f.expect_restores("vm-b", b2);
}

TEST(IncrementalPut, HolesFilledAndPunchedRestoreIdentically) {
  Fixture f;
  auto path = f.dir / "sparse.img";
  auto data = random_data(6 << 20, 3);
  {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, 48 << 20), 0);
    ASSERT_EQ(::pwrite(fd, data.data(), data.size(), 5 << 20), static_cast<ssize_t>(data.size()));
    ASSERT_EQ(::pwrite(fd, data.data(), data.size(), 33 << 20), static_cast<ssize_t>(data.size()));
    ::close(fd);
  }
  auto s1 = f.repo->put("sparse", path);
  ASSERT_TRUE(s1);
  EXPECT_GT(s1->hole_bytes, 0u) << "the file system keeps holes";
  // Data written into a hole, half a region long, mid-region.
  {
    int fd = ::open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, data.data(), 512 << 10, (20 << 20) + 4096), 512 << 10);
    ::close(fd);
  }
  auto image = *read_file(path);
  std::vector<uint8_t> v2(image.begin(), image.end());
  auto s2 = f.repo->put("sparse", path);
  ASSERT_TRUE(s2);
  EXPECT_EQ(s2->changed_regions, 1u);
  EXPECT_LE(s2->chunked_bytes, 1u << 20);
  auto full = f.repo->put("sparse-full", path, with_parent(ParentMode::kNone));
  ASSERT_TRUE(full);
  EXPECT_EQ(f.load(s2->snapshot).extents, f.load(full->snapshot).extents);
  f.expect_restores(s2->snapshot, v2);
}

TEST(IncrementalPut, AForgedMapIsCaughtByCheckReadDataAndRehash) {
  Fixture f;
  auto v1 = base_image(1), v2 = v1;
  auto change = random_data(64 << 10, 5);
  std::copy(change.begin(), change.end(), v2.begin() + (12 << 20) + 100);
  f.dir.write("v1.img", bytes_of(v1));
  f.dir.write("v2.img", bytes_of(v2));
  auto s1 = f.repo->put("disk", f.dir / "v1.img");
  auto s2 = f.repo->put("other", f.dir / "v2.img");
  ASSERT_TRUE(s1 && s2);
  ASSERT_TRUE(f.repo->check(true).ok());

  // Forge: v1's chunks under v2's map, as the newest snapshot of "disk" (what
  // a fingerprint collision in region 12 would have stored, or a buggy writer).
  auto key = master_key(f.dir / "repo");
  auto forged = f.load(s1->snapshot);
  forged.map = f.load(s2->snapshot).map;
  forged.time = now();
  auto forged_id = save_snapshot(*f.loc, key.encryption, forged);
  ASSERT_TRUE(forged_id);
  auto quick = f.repo->check(false);
  EXPECT_TRUE(quick.ok()) << "without data, a map cannot be checked";
  auto deep = f.repo->check(true);
  ASSERT_FALSE(deep.ok());
  EXPECT_THAT(deep.problems[0], HasSubstr("snapshot " + *forged_id));
  EXPECT_THAT(deep.problems[0], HasSubstr("region 12"));
  EXPECT_THAT(deep.problems[0], HasSubstr("do not match the image map"));

  // A put trusting it stores v1's bytes for region 12: the risk the map
  // carries. check --read-data finds this snapshot too.
  auto trusting = f.repo->put("disk", f.dir / "v2.img");
  ASSERT_TRUE(trusting);
  EXPECT_EQ(trusting->parent, *forged_id);
  EXPECT_EQ(trusting->chunked_bytes, 0u);
  deep = f.repo->check(true);
  EXPECT_TRUE(std::any_of(deep.problems.begin(), deep.problems.end(),
                          [&](const std::string& p) { return p.find(trusting->snapshot) != std::string::npos; }));

  // --rehash reads everything, names the region, and stores the right bytes.
  auto rehash = f.repo->put("disk", f.dir / "v2.img", with_parent(ParentMode::kRehash));
  ASSERT_TRUE(rehash) << rehash.error().message;
  EXPECT_EQ(rehash->parent, trusting->snapshot);
  EXPECT_EQ(rehash->reused_bytes, 0u);
  ASSERT_EQ(rehash->map_mismatches.size(), 1u);
  EXPECT_EQ(rehash->map_mismatches[0], 12u << 20);
  f.expect_restores(rehash->snapshot, v2);
  // After a rehash the series is sound again: the next put reuses the good snapshot.
  auto next = f.repo->put("disk", f.dir / "v2.img");
  ASSERT_TRUE(next);
  EXPECT_EQ(next->parent, rehash->snapshot);
  f.expect_restores(next->snapshot, v2);

  // A rehash against an honest parent finds nothing.
  auto honest = f.repo->put("other", f.dir / "v2.img", with_parent(ParentMode::kRehash));
  ASSERT_TRUE(honest);
  EXPECT_TRUE(honest->map_mismatches.empty());
}

TEST(IncrementalPut, WithoutAUsableParentAFullPutSaysWhy) {
  Fixture f;
  auto v1 = base_image(4);
  f.dir.write("v1.img", bytes_of(v1));
  auto key = master_key(f.dir / "repo");
  auto s1 = f.repo->put("disk", f.dir / "v1.img");
  ASSERT_TRUE(s1);

  // --no-parent: nothing reused although a parent exists.
  auto none = f.repo->put("disk", f.dir / "v1.img", with_parent(ParentMode::kNone));
  ASSERT_TRUE(none);
  EXPECT_EQ(none->reused_bytes, 0u);
  EXPECT_THAT(none->full_reason, HasSubstr("--no-parent"));

  // A parent written before maps existed.
  auto old = f.load(s1->snapshot);
  old.map.reset();
  old.time = now();
  auto old_id = save_snapshot(*f.loc, key.encryption, old);
  ASSERT_TRUE(old_id);
  auto s2 = f.repo->put("disk", f.dir / "v1.img");
  ASSERT_TRUE(s2);
  EXPECT_EQ(s2->reused_bytes, 0u);
  EXPECT_THAT(s2->full_reason, HasSubstr("has no image map (written by an older kvbackup)"));
  f.expect_restores(*old_id, v1);
  f.expect_restores(s2->snapshot, v1);

  // A parent whose map does not cover its image: unusable, named, and check reports it.
  auto broken = f.load(s2->snapshot);
  broken.map->regions.pop_back();
  broken.time = now();
  auto broken_id = save_snapshot(*f.loc, key.encryption, broken);
  ASSERT_TRUE(broken_id);
  auto s3 = f.repo->put("disk", f.dir / "v1.img");
  ASSERT_TRUE(s3);
  EXPECT_EQ(s3->reused_bytes, 0u);
  EXPECT_THAT(s3->full_reason, HasSubstr("unusable image map"));
  EXPECT_THAT(s3->full_reason, HasSubstr("has 23 regions, the image needs 24"));
  f.expect_restores(*broken_id, v1);
  auto report = f.repo->check(false);
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.problems[0], HasSubstr(*broken_id));

  // A parent manifest that cannot be opened at all is passed over.
  ASSERT_TRUE(write_file_atomic(f.dir / "repo/snapshots" / *broken_id, "garbage", 0600));
  auto s4 = f.repo->put("disk", f.dir / "v1.img");
  ASSERT_TRUE(s4) << s4.error().message;
  EXPECT_EQ(s4->parent, s3->snapshot) << "the newest readable snapshot of the name";
  EXPECT_EQ(s4->reused_bytes, v1.size());
}

// Two data extents swapped (each blob intact and of its extent's length, so
// every per-blob check passes): the image is wrong, and only the map sees it.
TEST(RegionCheckedRestore, ExtentsOutOfPlaceStopTheRestoreAtTheirRegionAndNothingOfItIsHandedOn) {
  Fixture f;
  auto v1 = base_image(6);
  f.dir.write("v1.img", bytes_of(v1));
  auto s1 = f.repo->put("disk", f.dir / "v1.img");
  ASSERT_TRUE(s1) << s1.error().message;
  auto forged = f.load(s1->snapshot);
  ASSERT_TRUE(forged.map.has_value());
  // The first two data extents wholly at or after 4 MiB that are adjacent.
  size_t i = 0;
  while (i + 1 < forged.extents.size() &&
         !(forged.extents[i].offset >= (4u << 20) && forged.extents[i].blob && forged.extents[i + 1].blob)) {
    ++i;
  }
  ASSERT_LT(i + 1, forged.extents.size());
  Extent a = forged.extents[i], b = forged.extents[i + 1];
  ASSERT_NE(a.blob, b.blob);
  forged.extents[i] = Extent{a.offset, b.length, b.blob};
  forged.extents[i + 1] = Extent{a.offset + b.length, a.length, a.blob};
  forged.time = now();
  auto key = master_key(f.dir / "repo");
  auto forged_id = save_snapshot(*f.loc, key.encryption, forged);
  ASSERT_TRUE(forged_id);

  const uint64_t bad_region = a.offset / kRegionSize;
  auto got = f.repo->get(*forged_id, f.dir / "out.img");
  ASSERT_FALSE(got) << "a restore of bytes out of place succeeded";
  EXPECT_EQ(got.error().code, Errc::kDamaged);
  EXPECT_THAT(got.error().message, HasSubstr("snapshot " + *forged_id));
  EXPECT_THAT(got.error().message, HasSubstr("(region " + std::to_string(bad_region) + ")"));
  EXPECT_THAT(got.error().message, HasSubstr("do not match the fingerprint its image map took"));
  EXPECT_FALSE(std::filesystem::exists(f.dir / "out.img")) << "a failed restore leaves no file";

  // To a consumer: exactly the image before that region, then the error.
  auto snap = f.repo->find(*forged_id);
  ASSERT_TRUE(snap);
  std::string handed;
  auto read = f.repo->read(*snap, [&](std::span<const uint8_t> piece) {
    handed.append(reinterpret_cast<const char*>(piece.data()), piece.size());
    return ok();
  });
  ASSERT_FALSE(read);
  EXPECT_THAT(read.error().message, HasSubstr("(region " + std::to_string(bad_region) + ")"));
  ASSERT_EQ(handed.size(), bad_region * kRegionSize) << "bytes of an unchecked region were handed on";
  EXPECT_TRUE(handed == bytes_of(v1).substr(0, handed.size()));

  // The honest snapshot still restores, and check --read-data names the forgery too.
  f.expect_restores(s1->snapshot, v1);
  EXPECT_FALSE(f.repo->check(true).ok());
}

// A map that does not describe its chunks (a bug, or someone holding the
// password): restores stop at the first region that differs, where before
// they restored the chunks silently.
TEST(RegionCheckedRestore, AMapThatDoesNotMatchItsChunksStopsTheRestore) {
  Fixture f;
  auto v1 = base_image(7), v2 = v1;
  auto change = random_data(64 << 10, 8);
  std::copy(change.begin(), change.end(), v2.begin() + (20 << 20));
  f.dir.write("v1.img", bytes_of(v1));
  f.dir.write("v2.img", bytes_of(v2));
  auto s1 = f.repo->put("disk", f.dir / "v1.img");
  auto s2 = f.repo->put("other", f.dir / "v2.img");
  ASSERT_TRUE(s1 && s2);
  auto forged = f.load(s1->snapshot);
  forged.map = f.load(s2->snapshot).map;
  forged.time = now();
  auto forged_id = save_snapshot(*f.loc, master_key(f.dir / "repo").encryption, forged);
  ASSERT_TRUE(forged_id);
  auto got = f.repo->get(*forged_id, f.dir / "out.img", replace());
  ASSERT_FALSE(got);
  EXPECT_THAT(got.error().message, HasSubstr("bytes " + std::to_string(20u << 20) + ".." + std::to_string(21u << 20)));
  EXPECT_THAT(got.error().message, HasSubstr("(region 20)"));
  // A snapshot whose map was dropped (as before maps) restores, its blobs checked against their ids.
  auto old = f.load(s1->snapshot);
  old.map.reset();
  old.time = now();
  auto old_id = save_snapshot(*f.loc, master_key(f.dir / "repo").encryption, old);
  ASSERT_TRUE(old_id);
  f.expect_restores(*old_id, v1);
}

}  // namespace
}  // namespace kvb::repo
