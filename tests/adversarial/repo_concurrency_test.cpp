// Issue 13 item 14: a repository under a careless or hostile user.
//
// - Deleting <repo>/lock while a put runs must not let a prune in (the lock is
//   on the repository directory itself).
// - A put whose packs vanish before it ends (a lock broken some other way)
//   fails and takes its snapshot back, instead of reporting success.
// - prune keeps packs younger than its grace period, indexed or not.
// - get never truncates a good copy (temporary file, rename), refuses an
//   existing target without --overwrite and refuses symbolic links.
#include "common/atomic_file.h"
#include "common/subprocess.h"
#include "repo/layout.h"
#include "repo/repository.h"
#include "tests/support/test_cluster.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>
#include <set>
#include <thread>

namespace kvb::testing {
namespace {
using ::testing::HasSubstr;
namespace fs = std::filesystem;

const std::string kPassword = "adversarial-pw";

ProcessResult kvb(const std::vector<std::string>& args, const std::string& stdin_data = "") {
  ProcessSpec spec;
  spec.argv = {kvbackup_binary(), "repo"};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env_overrides = {{"KVBACKUP_REPO_PASSWORD", kPassword}};
  spec.stdin_data = stdin_data;
  spec.timeout = std::chrono::seconds(120);
  spec.output_cap = 64 << 20;
  auto r = run_process(spec);
  if (!r) throw std::runtime_error(r.error().message);
  return *r;
}

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  return s;
}

// The packs of a local repository, with their paths on disk.
std::vector<repo::PackFile> packs_on_disk(const std::filesystem::path& repo_dir) {
  auto loc = location::open_local(repo_dir, location::OpenMode::kExisting);
  if (!loc) return {};
  auto packs = repo::list_pack_files(**loc);
  if (!packs) return {};
  for (auto& p : *packs) p.path = (repo_dir / p.path).string();
  return *packs;
}

size_t count_packs(const fs::path& repo) { return packs_on_disk(repo).size(); }

// Waits for an observable condition (not a sleep standing in for one).
bool eventually(const std::function<bool()>& cond, std::chrono::seconds limit = std::chrono::seconds(60)) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

TEST(RepoAdversarial, DeletingTheLockFileDuringAPutDoesNotLetPruneIn) {
  TempDir dir;
  std::string r = (dir / "r").string();
  ASSERT_EQ(kvb({"init", "--repo", r, "--pack-size-mib", "1"}).exit_code, 0);
  // A put from a stream that stalls after its first superblock: its packs are
  // on disk, its index and snapshot are not written yet.
  auto child = spawn_process({kvbackup_binary(), "repo", "put", "--repo", r, "vm", "-"},
                             environment_with({{"KVBACKUP_REPO_PASSWORD", kPassword}}), dir.path());
  ASSERT_TRUE(child) << child.error().message;
  std::string first = random_bytes(20 << 20, 1);
  size_t off = 0;
  while (off < first.size()) {
    ssize_t n = ::write(child->stdin_fd, first.data() + off, first.size() - off);
    ASSERT_GT(n, 0);
    off += static_cast<size_t>(n);
  }
  ASSERT_TRUE(eventually([&] { return count_packs(r) >= 8; })) << "the put writes packs of its first superblock";
  size_t packs_before = count_packs(r);

  // The careless user removes what looks like a stale lock file, then prunes.
  std::error_code ec;
  fs::remove(fs::path(r) / "lock", ec);
  auto prune = kvb({"prune", "--repo", r, "--grace-period", "0s"});
  EXPECT_NE(prune.exit_code, 0) << prune.out;
  EXPECT_THAT(prune.err, HasSubstr("is in use"));
  EXPECT_GE(count_packs(r), packs_before) << "no pack of the running put was removed";

  // The put finishes and its snapshot restores.
  std::string rest = random_bytes(3 << 20, 2);
  ASSERT_EQ(::write(child->stdin_fd, rest.data(), rest.size()), static_cast<ssize_t>(rest.size()));
  ::close(child->stdin_fd);
  int status = 0;
  ASSERT_EQ(::waitpid(child->pid, &status, 0), child->pid);
  ::close(child->stdout_fd);
  ::close(child->stderr_fd);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  auto check = kvb({"check", "--repo", r, "--read-data"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  auto get = kvb({"get", "--repo", r, "vm", "-"});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_TRUE(get.out == first + rest);
}

TEST(RepoAdversarial, APutWhosePacksVanishFailsAndKeepsNoSnapshot) {
  TempDir dir;
  Secret pw("pw");
  ASSERT_TRUE(repo::Repository::init(dir / "repo", pw, repo::InitOptions{1 << 10, 1 << 16}));
  dir.write("img", random_bytes(2 << 20, 3));
  auto repo = repo::Repository::open(dir / "repo", pw);
  ASSERT_TRUE(repo);
  repo::PutOptions opts;
  bool removed = false;
  // Once all data is read, something outside the lock deletes every pack so far.
  opts.progress = [&](uint64_t done, uint64_t total) {
    if (done < total || removed) return;
    auto files = packs_on_disk(dir / "repo");
    for (const auto& f : files) fs::remove(f.path);
    removed = !files.empty();
  };
  auto put = (*repo)->put("vm", dir / "img", opts);
  ASSERT_TRUE(removed);
  ASSERT_FALSE(put) << "a put whose packs vanished must not report success";
  EXPECT_EQ(put.error().code, Errc::kNotFound);
  EXPECT_THAT(put.error().message, HasSubstr("vanished"));
  EXPECT_THAT(put.error().message, HasSubstr("not kept"));
  auto snaps = (*repo)->snapshots();
  ASSERT_TRUE(snaps);
  EXPECT_TRUE(snaps->empty()) << "the snapshot was taken back";
}

TEST(RepoAdversarial, PruneKeepsPacksYoungerThanTheGracePeriod) {
  TempDir dir;
  Secret pw("pw");
  ASSERT_TRUE(repo::Repository::init(dir / "repo", pw, repo::InitOptions{1 << 10, 1 << 16}));
  dir.write("a", random_bytes(1 << 20, 4));
  dir.write("b", random_bytes(1 << 20, 5));
  dir.write("c", random_bytes(1 << 20, 6));
  auto index_files = [&] {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(dir / "repo" / "index")) out.insert(e.path().filename().string());
    return out;
  };
  std::set<std::string> before_c, after_c;
  {
    auto repo = repo::Repository::open(dir / "repo", pw);
    ASSERT_TRUE((*repo)->put("a", dir / "a"));
    ASSERT_TRUE((*repo)->put("b", dir / "b"));
    before_c = index_files();
    auto c = (*repo)->put("c", dir / "c");
    ASSERT_TRUE(c);
    after_c = index_files();
    // What an unfinished put leaves: c's packs, with no index naming them and no snapshot.
    fs::remove(dir / "repo" / "snapshots" / c->snapshot);
  }
  for (const auto& f : after_c) {
    if (!before_c.count(f)) fs::remove(dir / "repo" / "index" / f);
  }
  repo::OpenOptions exclusive;
  exclusive.mode = repo::LockMode::kExclusive;
  auto repo = repo::Repository::open(dir / "repo", pw, exclusive);
  ASSERT_TRUE(repo);
  auto snaps = (*repo)->snapshots();
  ASSERT_EQ(snaps->size(), 2u);
  ASSERT_TRUE((*repo)->forget_ids({(*snaps)[0].id}, false));
  auto unindexed = (*repo)->check(false).unindexed_packs;
  ASSERT_GE(unindexed, 1u);
  size_t packs = count_packs(dir / "repo");

  auto kept = (*repo)->prune();  // the default grace period
  ASSERT_TRUE(kept) << kept.error().message;
  EXPECT_EQ(kept->packs_removed + kept->packs_repacked, 0u);
  EXPECT_EQ(kept->packs_too_young, packs);
  EXPECT_EQ(count_packs(dir / "repo"), packs);
  auto report = (*repo)->check(true);
  EXPECT_TRUE(report.ok()) << report.problems.front();
  EXPECT_EQ(report.unindexed_packs, unindexed) << "the unfinished put's packs are still there";
  ASSERT_TRUE((*repo)->get("b", dir / "out-b"));
  EXPECT_EQ(*read_file(dir / "out-b"), *read_file(dir / "b"));

  repo::PruneOptions no_grace;
  no_grace.grace = std::chrono::seconds(0);
  auto gone = (*repo)->prune(no_grace);
  ASSERT_TRUE(gone) << gone.error().message;
  EXPECT_GE(gone->packs_removed, 2u) << "with no grace, a's packs and the unfinished put's go";
  EXPECT_EQ((*repo)->check(false).unindexed_packs, 0u);
  ASSERT_TRUE((*repo)->get("b", dir / "out-b2"));
  EXPECT_EQ(*read_file(dir / "out-b2"), *read_file(dir / "b"));
}

TEST(RepoAdversarial, GetNeverTruncatesAGoodCopyNorWritesThroughALink) {
  TempDir dir;
  std::string r = (dir / "r").string();
  ASSERT_EQ(kvb({"init", "--repo", r}).exit_code, 0);
  std::string image = random_bytes(3 << 20, 6);
  dir.write("img", image);
  ASSERT_EQ(kvb({"put", "--repo", r, "vm", (dir / "img").string()}).exit_code, 0);
  std::string good = (dir / "good.img").string();
  ASSERT_EQ(kvb({"get", "--repo", r, "vm", good}).exit_code, 0);
  ASSERT_TRUE(*read_file(good) == image);

  // An existing target is refused without --overwrite, and left as it is.
  dir.write("other", "precious");
  auto refused = kvb({"get", "--repo", r, "vm", (dir / "other").string()});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_THAT(refused.err, HasSubstr("--overwrite"));
  EXPECT_EQ(*read_file(dir / "other"), "precious");

  // A symbolic link is refused, named, even with --overwrite; what it points to is untouched.
  fs::create_symlink(dir / "other", dir / "link");
  auto link = kvb({"get", "--repo", r, "--overwrite", "vm", (dir / "link").string()});
  EXPECT_EQ(link.exit_code, 2);
  EXPECT_THAT(link.err, HasSubstr((dir / "link").string()));
  EXPECT_THAT(link.err, HasSubstr("symbolic link"));
  EXPECT_EQ(*read_file(dir / "other"), "precious");

  // A character device is written like a stream.
  EXPECT_EQ(kvb({"get", "--repo", r, "vm", "/dev/null"}).exit_code, 0);

  // Damage the repository: get --overwrite fails and the good copy stays whole,
  // with no temporary file left beside it.
  auto packs = packs_on_disk(r);
  ASSERT_FALSE(packs.empty());
  {
    int fd = ::open(packs.front().path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, "XXXXXXXX", 8, 100), 8);
    ::close(fd);
  }
  auto damaged = kvb({"get", "--repo", r, "--overwrite", "vm", good});
  EXPECT_NE(damaged.exit_code, 0);
  EXPECT_TRUE(*read_file(good) == image) << "a failed restore left the existing copy as it was";
  for (const auto& e : fs::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().filename().string().find(".kvbackup-"), std::string::npos) << e.path();
  }
}

}  // namespace
}  // namespace kvb::testing
