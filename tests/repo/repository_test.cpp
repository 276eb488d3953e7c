// src/repo end to end through Repository: put/get round trips, dedup, zeros
// and sparse holes, streams, tags and progress, the pipeline's determinism,
// concurrent puts, locks, retention, forget and prune, and damage (tampered,
// truncated, missing index) detected and named.
#include "common/atomic_file.h"
#include "common/time.h"
#include "repo/layout.h"
#include "repo/repository.h"
#include "tests/repo/test_data.h"
#include "tests/support/test_api_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>
#include <thread>

namespace kvb::repo {
namespace {
using ::testing::HasSubstr;

const InitOptions kFastInit{1 << 10, 16 << 20};
const GetOptions kReplace = [] {
  GetOptions o;
  o.overwrite = true;  // the tests restore to one scratch file again and again
  return o;
}();
const PruneOptions kNoGrace = [] {
  PruneOptions o;
  o.grace = std::chrono::seconds(0);  // the packs were written a moment ago
  return o;
}();

// The packs of a local repository, with their paths on disk.
std::vector<repo::PackFile> packs_on_disk(const std::filesystem::path& repo_dir) {
  auto loc = location::open_local(repo_dir, location::OpenMode::kExisting);
  if (!loc) return {};
  auto packs = repo::list_pack_files(**loc);
  if (!packs) return {};
  for (auto& p : *packs) p.path = (repo_dir / p.path).string();
  return *packs;
}

TEST(Repository, PutGetDedupZerosAndCheck) {
  testing::TempDir dir;
  Secret pw("s3cret");
  ASSERT_TRUE(Repository::init(dir / "repo", pw, kFastInit));
  EXPECT_FALSE(Repository::init(dir / "repo", pw, kFastInit)) << "init refuses an existing repository";
  auto wrong = Repository::open(dir / "repo", Secret("nope"));
  ASSERT_FALSE(wrong);
  EXPECT_THAT(wrong.error().message, HasSubstr("wrong password"));
  auto repo = Repository::open(dir / "repo", pw);
  ASSERT_TRUE(repo) << repo.error().message;

  // A 12 MiB "disk": random data, 4 MiB of zeros, text.
  auto disk = random_data(6 << 20, 21);
  disk.resize(10 << 20, 0);
  std::string text;
  while (text.size() < (2u << 20)) text += "log line: the VM was frozen and thawed in 212 ms\n";
  disk.insert(disk.end(), text.begin(), text.begin() + (2 << 20));
  dir.write("disk-v1.img", bytes_of(disk));
  auto s1 = (*repo)->put("vm-disk", dir / "disk-v1.img");
  ASSERT_TRUE(s1) << s1.error().message;
  EXPECT_EQ(s1->bytes, disk.size());
  EXPECT_GE(s1->zero_bytes, 3u << 20) << "zero chunks are not stored";
  EXPECT_LT(s1->stored_bytes, disk.size() - s1->zero_bytes) << "text compresses";

  // Version 2: 4 KiB changed in two places and 100 KiB inserted: little new data.
  auto v2 = disk;
  for (size_t at : {size_t{1} << 20, size_t{5} << 20}) std::fill(v2.begin() + at, v2.begin() + at + 4096, 0x5a);
  auto extra = random_data(100 << 10, 22);
  v2.insert(v2.begin() + (3 << 20), extra.begin(), extra.end());
  dir.write("disk-v2.img", bytes_of(v2));
  auto s2 = (*repo)->put("vm-disk", dir / "disk-v2.img");
  ASSERT_TRUE(s2) << s2.error().message;
  EXPECT_LT(s2->new_bytes, 4u << 20) << "only the chunks around the changes are new";

  // A fresh open sees both snapshots; each restores bit-identically.
  repo = Repository::open(dir / "repo", pw);
  ASSERT_TRUE(repo);
  auto snaps = (*repo)->snapshots();
  ASSERT_TRUE(snaps);
  ASSERT_EQ(snaps->size(), 2u);
  ASSERT_TRUE((*repo)->get((*snaps)[0].id, dir / "out-v1.img", kReplace));
  EXPECT_EQ(*read_file(dir / "out-v1.img"), bytes_of(disk));
  ASSERT_TRUE((*repo)->get("vm-disk", dir / "out-v2.img", kReplace)) << "by name: the newest";
  EXPECT_EQ(*read_file(dir / "out-v2.img"), bytes_of(v2));
  EXPECT_FALSE((*repo)->get("nothing", dir / "x"));
  auto report = (*repo)->check(true);
  EXPECT_TRUE(report.ok()) << report.problems[0];
  EXPECT_GT(report.blobs, 0u);

  // Damage one pack: check names it; the restore fails instead of writing wrong data.
  std::filesystem::path victim;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir / "repo/data")) {
    if (e.is_regular_file()) victim = e.path();
  }
  ASSERT_FALSE(victim.empty());
  auto packbytes = *read_file(victim);
  packbytes[packbytes.size() / 3] ^= 0x10;
  ASSERT_TRUE(write_file_atomic(victim, packbytes, 0600));
  auto damaged = (*repo)->check(true);
  ASSERT_FALSE(damaged.ok());
  EXPECT_THAT(damaged.problems[0], HasSubstr(victim.filename().string()));
}

TEST(Repository, EmptyAndOneByteSources) {
  testing::TempDir dir;
  Secret pw("pw");
  ASSERT_TRUE(Repository::init(dir / "repo", pw, kFastInit));
  auto repo = Repository::open(dir / "repo", pw);
  ASSERT_TRUE(repo);
  for (const std::string& content : {std::string(), std::string("x")}) {
    dir.write("in", content);
    ASSERT_TRUE((*repo)->put("f" + std::to_string(content.size()), dir / "in"));
    ASSERT_TRUE((*repo)->get("f" + std::to_string(content.size()), dir / "out", kReplace));
    EXPECT_EQ(*read_file(dir / "out"), content);
  }
  EXPECT_FALSE((*repo)->put("missing", dir / "no-such-file"));
}

std::unique_ptr<Repository> open_ok(const std::filesystem::path& dir, const Secret& pw, LockMode mode = LockMode::kShared) {
  OpenOptions o;
  o.mode = mode;
  auto r = Repository::open(dir, pw, o);
  if (!r) ADD_FAILURE() << r.error().message;
  return r ? std::move(*r) : nullptr;
}

// Writes `data` at `offset` into a file, leaving what is not written a hole.
void write_at(const std::filesystem::path& path, const std::vector<uint8_t>& data, off_t offset) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, data.data(), data.size(), offset), static_cast<ssize_t>(data.size()));
  ::close(fd);
}

TEST(Repository, SparseHolesAreNeitherReadNorStoredAndRestoreAsHoles) {
  testing::TempDir dir;
  Secret pw("pw");
  ASSERT_TRUE(Repository::init(dir / "repo", pw, kFastInit));
  auto repo = open_ok(dir / "repo", pw);
  auto image = dir / "sparse.img";
  ASSERT_EQ(::truncate(image.c_str(), 0), -1);  // does not exist yet
  write_at(image, random_data(1 << 20, 1), 8 << 20);
  write_at(image, random_data(1 << 20, 2), 40 << 20);
  ASSERT_EQ(::truncate(image.c_str(), 64 << 20), 0);
  auto s = repo->put("sparse", image);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->bytes, 64u << 20);
  EXPECT_GE(s->hole_bytes, 60u << 20) << "holes are found with SEEK_HOLE, not read";
  EXPECT_LE(s->new_bytes, 2u << 20);
  ASSERT_TRUE(repo->get("sparse", dir / "out.img", kReplace));
  EXPECT_EQ(*read_file(dir / "out.img"), *read_file(image));
  struct stat st {};
  ASSERT_EQ(::stat((dir / "out.img").c_str(), &st), 0);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, 8u << 20) << "the restored file is sparse too";
  auto snap = find_snapshot(**location::open_local(dir / "repo", location::OpenMode::kExisting), Key256{}, "sparse");
  EXPECT_FALSE(snap) << "a manifest does not open without the key";
}

TEST(Repository, StreamsTagsProgressAndWorkerCountsGiveTheSameSnapshot) {
  testing::TempDir dir;
  Secret pw("pw");
  ASSERT_TRUE(Repository::init(dir / "repo", pw, kFastInit));
  auto repo = open_ok(dir / "repo", pw);
  auto data = random_data(5 << 20, 3);
  std::fill(data.begin() + (1 << 20), data.begin() + (3 << 20), 0);
  dir.write("img", bytes_of(data));

  PutOptions one;
  one.workers = 1;
  one.tags = {"nightly", "vm=db-0"};
  uint64_t last_done = 0, last_total = 0;
  one.progress = [&](uint64_t done, uint64_t total) {
    EXPECT_GE(done, last_done) << "progress never goes back";
    last_done = done;
    last_total = total;
  };
  auto a = repo->put("img", dir / "img", one);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(last_done, data.size());
  EXPECT_EQ(last_total, data.size());
  PutOptions four;
  four.workers = 4;
  auto b = repo->put("img", dir / "img", four);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->new_chunks, 0u);
  EXPECT_EQ(b->chunks, a->chunks) << "1 or 4 workers: the same chunks";

  // The same bytes through a FIFO: a stream of unknown size.
  auto fifo = dir / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::thread writer([&] {
    int fd = ::open(fifo.c_str(), O_WRONLY);
    for (size_t off = 0; off < data.size(); off += 100000) {
      size_t n = std::min<size_t>(100000, data.size() - off);
      if (::write(fd, data.data() + off, n) != static_cast<ssize_t>(n)) break;
    }
    ::close(fd);
  });
  auto c = repo->put("stream", fifo);
  writer.join();
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->bytes, data.size());
  EXPECT_EQ(c->new_chunks, 0u) << "a stream chunks like the file it came from";

  auto snaps = repo->snapshots();
  ASSERT_TRUE(snaps);
  ASSERT_EQ(snaps->size(), 3u);
  EXPECT_THAT((*snaps)[0].tags, ::testing::ElementsAre("nightly", "vm=db-0"));
  for (const auto& s : *snaps) {
    ASSERT_TRUE(repo->get(s.id, dir / "out", kReplace));
    EXPECT_EQ(*read_file(dir / "out"), bytes_of(data)) << s.name;
  }
}

TEST(Repository, ConcurrentPutsShareTheRepository) {
  testing::TempDir dir;
  Secret pw("pw");
  ASSERT_TRUE(Repository::init(dir / "repo", pw, InitOptions{1 << 10, 1 << 20}));
  auto common = random_data(3 << 20, 4);
  for (int i = 0; i < 2; ++i) {
    auto d = common;
    auto own = random_data(2 << 20, 10 + i);
    d.insert(d.end(), own.begin(), own.end());
    dir.write("img" + std::to_string(i), bytes_of(d));
  }
  auto r0 = open_ok(dir / "repo", pw), r1 = open_ok(dir / "repo", pw);
  Result<PutStats> s0 = Error(Errc::kUnknown, ""), s1 = s0;
  std::thread t0([&] { s0 = r0->put("vm0", dir / "img0"); });
  std::thread t1([&] { s1 = r1->put("vm1", dir / "img1"); });
  t0.join();
  t1.join();
  ASSERT_TRUE(s0) << s0.error().message;
  ASSERT_TRUE(s1) << s1.error().message;
  r0.reset();
  r1.reset();
  auto repo = open_ok(dir / "repo", pw);
  auto report = repo->check(true);
  EXPECT_TRUE(report.ok()) << report.problems[0];
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(repo->get("vm" + std::to_string(i), dir / "out", kReplace));
    EXPECT_EQ(*read_file(dir / "out"), *read_file(dir / ("img" + std::to_string(i))));
  }
}

// What --copy-data does: several volumes put at once through one Repository
// object, sharing chunks, so that one put's index additions meet another's
// lookups (a data race on the index before it had a lock).
TEST(Repository, ConcurrentPutsThroughOneRepositoryObject) {
  testing::TempDir dir;
  Secret pw("pw");
  ASSERT_TRUE(Repository::init(dir / "repo", pw, InitOptions{1 << 10, 1 << 20}));
  auto common = random_data(4 << 20, 5);
  constexpr int kPuts = 4;
  for (int i = 0; i < kPuts; ++i) {
    auto d = common;
    auto own = random_data(1 << 20, 20 + i);
    d.insert(d.begin() + (i << 20), own.begin(), own.end());
    dir.write("img" + std::to_string(i), bytes_of(d));
  }
  auto repo = open_ok(dir / "repo", pw);
  std::vector<Result<PutStats>> got(kPuts, Error(Errc::kUnknown, ""));
  std::vector<std::thread> threads;
  for (int i = 0; i < kPuts; ++i) {
    threads.emplace_back([&, i] { got[i] = repo->put("vm" + std::to_string(i), dir / ("img" + std::to_string(i))); });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kPuts; ++i) {
    ASSERT_TRUE(got[i]) << got[i].error().message;
    ASSERT_TRUE(repo->get("vm" + std::to_string(i), dir / "out", kReplace));
    EXPECT_EQ(*read_file(dir / "out"), *read_file(dir / ("img" + std::to_string(i))));
  }
  auto report = repo->check(true);
  EXPECT_TRUE(report.ok()) << report.problems[0];
}

TEST(Repository, PruneHasTheRepositoryToItself) {
  testing::TempDir dir;
  Secret pw("pw");
  ASSERT_TRUE(Repository::init(dir / "repo", pw, kFastInit));
  auto a = open_ok(dir / "repo", pw);
  auto b = open_ok(dir / "repo", pw);
  ASSERT_TRUE(a && b) << "shared locks share";
  OpenOptions ex;
  ex.mode = LockMode::kExclusive;
  auto denied = Repository::open(dir / "repo", pw, ex);
  ASSERT_FALSE(denied);
  EXPECT_THAT(denied.error().message, HasSubstr("is in use"));
  EXPECT_THAT(denied.error().message, HasSubstr((dir / "repo").string()));
  EXPECT_FALSE(a->prune()) << "prune refuses to run under a shared lock";
  a.reset();
  b.reset();
  auto owner = open_ok(dir / "repo", pw, LockMode::kExclusive);
  ASSERT_TRUE(owner);
  auto put_denied = Repository::open(dir / "repo", pw);
  ASSERT_FALSE(put_denied) << "no put while a prune runs";
  EXPECT_THAT(put_denied.error().message, HasSubstr("forget or prune holds it"));
}

Snapshot at(const std::string& name, const std::string& time) {
  Snapshot s;
  s.id = name + "@" + time;
  s.name = name;
  s.time = time;
  return s;
}

TEST(Retention, KeepRulesPerNameAndNeverAnEmptyPolicy) {
  std::vector<Snapshot> snaps;
  // vm-a: three backups a day from 2026-10-01 to 2026-11-25 (56 days); vm-b: one.
  for (int d = 0; d < 56; ++d) {
    auto day = std::chrono::sys_days{std::chrono::year{2026} / 10 / 1} + std::chrono::days(d);
    for (int h : {1, 9, 17}) snaps.push_back(at("vm-a", format_rfc3339(day + std::chrono::hours(h))));
  }
  snaps.push_back(at("vm-b", "2026-01-01T00:00:00Z"));
  auto all = apply_retention(snaps, RetentionPolicy{});
  ASSERT_TRUE(all);
  EXPECT_TRUE(std::all_of(all->begin(), all->end(), [](const std::string& r) { return !r.empty(); })) << "an empty policy keeps all";

  auto r = apply_retention(snaps, RetentionPolicy{2, 7, 4, 3});
  ASSERT_TRUE(r);
  std::vector<std::string> kept;
  for (size_t i = 0; i < snaps.size(); ++i) {
    if (!(*r)[i].empty()) kept.push_back(snaps[i].time.substr(0, 13));
  }
  // last 2 (11-25 17h, 09h); daily 7: 11-19..11-25 at 17h; weekly 4: the newest of weeks 48, 47, 46, 45
  // (11-25, 11-22, 11-15, 11-08 at 17h); monthly 3: 11-25, 10-31 (and vm-b's January, alone in its name).
  EXPECT_THAT(kept, ::testing::UnorderedElementsAre("2026-01-01T00", "2026-10-31T17", "2026-11-08T17", "2026-11-15T17",
                                                    "2026-11-19T17", "2026-11-20T17", "2026-11-21T17", "2026-11-22T17",
                                                    "2026-11-23T17", "2026-11-24T17", "2026-11-25T09", "2026-11-25T17"));
  auto bad = snaps;
  bad[0].time = "yesterday";
  auto err = apply_retention(bad, RetentionPolicy{1, 0, 0, 0});
  ASSERT_FALSE(err);
  EXPECT_THAT(err.error().message, HasSubstr("yesterday"));
}

TEST(Repository, ForgetAndPruneFreeSpaceAndKeepTheRest) {
  testing::TempDir dir;
  Secret pw("pw");
  ASSERT_TRUE(Repository::init(dir / "repo", pw, InitOptions{1 << 10, 1 << 20}));
  auto shared = random_data(2 << 20, 30);
  std::vector<std::vector<uint8_t>> images;
  for (int i = 0; i < 3; ++i) {
    auto own = random_data(3 << 20, 31 + i);
    own.insert(own.end(), shared.begin(), shared.end());
    images.push_back(own);
    dir.write("img" + std::to_string(i), bytes_of(own));
  }
  std::vector<std::string> ids;
  {
    auto repo = open_ok(dir / "repo", pw);
    for (int i = 0; i < 3; ++i) ids.push_back(repo->put("vm", dir / ("img" + std::to_string(i)))->snapshot);
    // A put interrupted after its packs were written: no index file names them, no snapshot needs them.
    auto index_files = [&] {
      std::set<std::filesystem::path> out;
      for (const auto& e : std::filesystem::directory_iterator(dir / "repo/index")) out.insert(e.path());
      return out;
    };
    auto before = index_files();
    dir.write("img-x", bytes_of(random_data(1 << 20, 77)));
    auto x = repo->put("vm-x", dir / "img-x");
    ASSERT_TRUE(x);
    for (const auto& f : index_files()) {
      if (!before.count(f)) std::filesystem::remove(f);
    }
    std::filesystem::remove(dir / "repo/snapshots" / x->snapshot);
  }
  auto repo = open_ok(dir / "repo", pw, LockMode::kExclusive);
  auto before = repo->check(false);
  EXPECT_TRUE(before.ok()) << before.problems[0];
  EXPECT_EQ(before.unindexed_packs, 1u) << "garbage, not a problem";
  auto stats_before = repo->stats();
  ASSERT_TRUE(stats_before);

  EXPECT_FALSE(repo->forget(RetentionPolicy{}, false)) << "an empty policy is refused";
  auto dry = repo->forget_ids({ids[0]}, true);
  ASSERT_TRUE(dry);
  EXPECT_EQ(repo->snapshots()->size(), 3u) << "dry run";
  auto f = repo->forget(RetentionPolicy{2, 0, 0, 0}, false);
  ASSERT_TRUE(f) << f.error().message;
  ASSERT_EQ(f->removed.size(), 1u);
  EXPECT_EQ(f->removed[0].id, ids[0]) << "the oldest goes";
  auto p = repo->prune(kNoGrace);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_GE(p->packs_removed + p->packs_repacked, 1u);
  EXPECT_LT(p->bytes_after, p->bytes_before);
  auto stats_after = repo->stats();
  EXPECT_LT(stats_after->stored_bytes + (2u << 20), stats_before->stored_bytes) << "the forgotten image's own 3 MiB are gone";
  auto after = repo->check(true);
  EXPECT_TRUE(after.ok()) << after.problems[0];
  EXPECT_EQ(after.unindexed_packs, 0u);
  for (int i = 1; i < 3; ++i) {
    ASSERT_TRUE(repo->get(ids[i], dir / "out", kReplace));
    EXPECT_EQ(*read_file(dir / "out"), bytes_of(images[i]));
  }
  auto again = repo->prune(kNoGrace);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->packs_removed + again->packs_repacked, 0u) << "a second prune finds nothing";
}

TEST(Repository, TruncatedPackAndMissingIndexAreNamedAndRecoverable) {
  testing::TempDir dir;
  Secret pw("pw");
  ASSERT_TRUE(Repository::init(dir / "repo", pw, InitOptions{1 << 10, 1 << 20}));
  auto data = random_data(3 << 20, 40);
  dir.write("img", bytes_of(data));
  ASSERT_TRUE(open_ok(dir / "repo", pw)->put("vm", dir / "img"));

  // The index lost: check says so and points at rebuild-index, which recovers it from the packs.
  std::filesystem::remove_all(dir / "repo/index");
  {
    auto repo = open_ok(dir / "repo", pw);
    auto lost = repo->check(false);
    ASSERT_FALSE(lost.ok());
    EXPECT_THAT(lost.problems[0], HasSubstr("is in no indexed pack"));
    EXPECT_THAT(lost.problems.back(), HasSubstr("rebuild-index"));
    auto get = repo->get("vm", dir / "out", kReplace);
    ASSERT_FALSE(get);
    EXPECT_THAT(get.error().message, HasSubstr("in no pack"));
  }
  {
    OpenOptions o;
    o.mode = LockMode::kExclusive;
    o.load_index = false;
    auto repo = Repository::open(dir / "repo", pw, o);
    ASSERT_TRUE(repo);
    ASSERT_TRUE((*repo)->rebuild_index());
    EXPECT_TRUE((*repo)->check(true).ok());
  }

  // A truncated pack: check and get name it; get writes no wrong data.
  auto packs = packs_on_disk(dir / "repo");
  ASSERT_FALSE(packs.empty());
  std::filesystem::resize_file(packs[0].path, packs[0].size / 2);
  auto repo = open_ok(dir / "repo", pw);
  auto report = repo->check(false);
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.problems[0], HasSubstr(packs[0].name));
  auto get = repo->get("vm", dir / "out", kReplace);
  ASSERT_FALSE(get);
  EXPECT_THAT(get.error().message, HasSubstr(packs[0].name));
}

// Repository::read, the path of a restore through CDI upload: the whole
// image in order, zeros included, with any number of workers; a sink's error
// stops it at once; a damaged blob names the byte range and nothing after it
// reaches the sink.
TEST(Repository, ReadStreamsTheImageInOrderAndStopsAtTheFirstError) {
  testing::TempDir dir;
  Secret pw("pw");
  ASSERT_TRUE(Repository::init(dir / "repo", pw, InitOptions{1 << 10, 1 << 20}));
  auto disk = random_data(5 << 20, 31);
  disk.resize(7 << 20, 0);
  auto tail = random_data(3 << 20, 32);
  disk.insert(disk.end(), tail.begin(), tail.end());
  dir.write("img", bytes_of(disk));
  auto repo = open_ok(dir / "repo", pw);
  ASSERT_TRUE(repo->put("vm", dir / "img"));
  auto snap = repo->find("vm");
  ASSERT_TRUE(snap) << snap.error().message;
  for (unsigned workers : {1u, 2u, 7u}) {
    std::vector<uint8_t> got;
    GetOptions o;
    o.workers = workers;
    auto st = repo->read(*snap, [&](std::span<const uint8_t> b) {
      got.insert(got.end(), b.begin(), b.end());
      return ok();
    }, o);
    ASSERT_TRUE(st) << st.error().message;
    EXPECT_TRUE(got == disk) << workers << " workers: the bytes differ";
  }

  size_t calls = 0;
  auto refused = repo->read(*snap, [&](std::span<const uint8_t>) -> Status {
    return ++calls == 3 ? Status(Error(Errc::kTransport, "the upload proxy went away")) : ok();
  });
  ASSERT_FALSE(refused);
  EXPECT_THAT(refused.error().message, HasSubstr("the upload proxy went away"));
  EXPECT_EQ(calls, 3u) << "nothing reaches the sink after its error";

  auto packs = packs_on_disk(dir / "repo");
  ASSERT_FALSE(packs.empty());
  for (const auto& p : packs) {
    auto bytes = *read_file(p.path);
    bytes[bytes.size() / 4] ^= 0x01;
    ASSERT_TRUE(write_file_atomic(p.path, bytes, 0600));
  }
  uint64_t delivered = 0;
  auto damaged = repo->read(*snap, [&](std::span<const uint8_t> b) {
    delivered += b.size();
    return ok();
  });
  ASSERT_FALSE(damaged);
  EXPECT_THAT(damaged.error().message, HasSubstr("cannot be restored"));
  EXPECT_THAT(damaged.error().message, HasSubstr("bytes "));
  EXPECT_LT(delivered, disk.size());
}

}  // namespace
}  // namespace kvb::repo
