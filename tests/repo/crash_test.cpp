// The repository survives kill -9 (issue 7's crash test): `kvbackup repo put`
// and `kvbackup repo prune` are killed at random moments, many times; after
// every kill `check --read-data` passes and every snapshot that completed
// restores bit-identically. The kill times are drawn from the length of an
// uninterrupted run, so kills land before, during and after each step of the
// write order (packs, syncfs, index, snapshot; new packs, new index, removals).
#include "common/atomic_file.h"
#include "common/subprocess.h"
#include "tests/repo/test_data.h"
#include "tests/support/test_cluster.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <random>
#include <thread>

namespace kvb::testing {
namespace {
using repo::bytes_of;
using repo::random_data;
using Clock = std::chrono::steady_clock;

const EnvVars kEnv = {{"KVBACKUP_REPO_PASSWORD", "crash-test"}};

ProcessResult kvb(const std::vector<std::string>& args) {
  ProcessSpec spec;
  spec.argv = {kvbackup_binary(), "repo"};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env_overrides = kEnv;
  spec.timeout = std::chrono::seconds(120);
  auto r = run_process(spec);
  if (!r) throw std::runtime_error(r.error().message);
  return *r;
}

// Runs `kvbackup repo args...` and SIGKILLs it after `delay` unless it ended first; true if it was killed.
bool run_and_kill(const std::vector<std::string>& args, std::chrono::microseconds delay) {
  std::vector<std::string> argv = {kvbackup_binary(), "repo"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto child = spawn_process(argv, environment_with(kEnv), {});
  if (!child) throw std::runtime_error(child.error().message);
  ::close(child->stdin_fd);
  // Fault injection, not synchronisation: the kill is meant to land at an arbitrary moment.
  std::this_thread::sleep_for(delay);
  ::kill(child->pid, SIGKILL);
  int status = 0;
  ::waitpid(child->pid, &status, 0);
  ::close(child->stdout_fd);
  ::close(child->stderr_fd);
  return WIFSIGNALED(status);
}

std::chrono::microseconds timed(const std::vector<std::string>& args) {
  auto t0 = Clock::now();
  auto r = kvb(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0);
}

// Snapshot ids in the repository, by name.
std::map<std::string, std::string> snapshot_ids(const std::string& repo) {
  auto r = kvb({"list", "--repo", repo});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::map<std::string, std::string> out;
  std::istringstream in(r.out);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, name;
    f >> id >> name;
    out[name] = id;
  }
  return out;
}

class RepoCrash : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_ = (dir_ / "repo").string();
    ASSERT_EQ(kvb({"init", "--repo", repo_, "--pack-size-mib", "1"}).exit_code, 0);
    base_ = random_data(4 << 20, 1);
    std::string text;
    while (text.size() < (2u << 20)) text += "guest log: fsfreeze ok, snapshot cut, thaw ok\n";
    base_.insert(base_.end(), text.begin(), text.end());
    base_.resize(base_.size() + (1 << 20), 0);
  }

  // A version of the base image with `changes` random 64 KiB runs rewritten.
  std::string version(uint32_t seed, int changes) {
    auto v = base_;
    std::mt19937 rng(seed);
    for (int c = 0; c < changes; ++c) {
      auto run = random_data(64 << 10, seed * 100 + c);
      size_t at = rng() % (v.size() - run.size());
      std::copy(run.begin(), run.end(), v.begin() + static_cast<std::ptrdiff_t>(at));
    }
    auto name = "v" + std::to_string(seed) + ".img";
    dir_.write(name, bytes_of(v));
    images_[name] = bytes_of(v);
    return name;
  }

  // check --read-data passes, and the snapshots in `expected` (name -> image) restore bit-identically:
  // all of them, or (quick) the newest and one drawn at random.
  void verify(const std::string& when, bool all = true) {
    auto check = kvb({"check", "--repo", repo_, "--read-data"});
    ASSERT_EQ(check.exit_code, 0) << when << ":\n" << check.err << check.out;
    auto ids = snapshot_ids(repo_);
    std::map<std::string, std::string> some;
    if (!all && !expected_.empty()) {
      some.insert(*expected_.rbegin());
      some.insert(*std::next(expected_.begin(), static_cast<std::ptrdiff_t>(pick_() % expected_.size())));
    }
    for (const auto& [name, image] : all ? expected_ : some) {
      ASSERT_TRUE(ids.count(name)) << when << ": snapshot " << name << " is gone";
      auto out = (dir_ / "restored.img").string();
      auto get = kvb({"get", "--repo", repo_, "--overwrite", ids[name], out});
      ASSERT_EQ(get.exit_code, 0) << when << ": " << get.err;
      ASSERT_TRUE(*read_file(out) == images_[image]) << when << ": snapshot " << name << " does not restore bit-identically";
    }
  }

  TempDir dir_;
  std::string repo_;
  std::vector<uint8_t> base_;
  std::map<std::string, std::string> images_;    // file -> content
  std::map<std::string, std::string> expected_;  // snapshot name -> file
  std::mt19937 pick_{7};
};

TEST_F(RepoCrash, KillNineDuringPutAndPruneNeverCostsACompletedSnapshot) {
  const auto budget = std::chrono::seconds(30);
  const auto start = Clock::now();
  std::mt19937 rng(2026);
  auto put_time = timed({"put", "--repo", repo_, "s0", (dir_ / version(0, 0)).string()});
  // Opening the repository (scrypt) takes a good part of a run: kills aim past it.
  auto open_time = timed({"list", "--repo", repo_}) * 3 / 4;
  expected_["s0"] = "v0.img";
  int kills = 0, interrupted = 0, put_rounds = 0, prune_rounds = 0;

  // Puts killed at random moments; some complete before the kill and then must stay restorable.
  for (uint32_t i = 1; i <= 40 && Clock::now() - start < budget / 2; ++i, ++put_rounds) {
    auto image = version(i, 6);
    auto name = "s" + std::to_string(i);
    std::uniform_int_distribution<int64_t> when(open_time.count(), put_time.count());
    bool killed = run_and_kill({"put", "--repo", repo_, name, (dir_ / image).string()}, std::chrono::microseconds(when(rng)));
    ++kills;
    if (snapshot_ids(repo_).count(name)) {
      expected_[name] = image;
    } else {
      interrupted += killed ? 1 : 0;
    }
    verify("after killing put " + name, false);
  }
  verify("after the puts");

  // Prunes killed at random moments, each after a forget that leaves work to do. On a loaded
  // machine every put above may have been killed mid-way: complete a few so that prune has work.
  for (uint32_t i = 100; expected_.size() < 5; ++i) {
    auto name = "s" + std::to_string(i);
    auto image = version(i, 6);
    ASSERT_EQ(kvb({"put", "--repo", repo_, name, (dir_ / image).string()}).exit_code, 0);
    expected_[name] = image;
  }
  auto ids = snapshot_ids(repo_);
  for (int round = 0; round < 12 && expected_.size() > 2 && (round == 0 || Clock::now() - start < budget); ++round, ++prune_rounds) {
    auto victim = std::next(expected_.begin(), static_cast<std::ptrdiff_t>(rng() % expected_.size()));
    ASSERT_EQ(kvb({"forget", "--repo", repo_, ids[victim->first]}).exit_code, 0);
    expected_.erase(victim);
    std::uniform_int_distribution<int64_t> when(open_time.count(), put_time.count() * 3 / 2);
    if (run_and_kill({"prune", "--repo", repo_, "--grace-period", "0s", "--max-unused", "0.05"}, std::chrono::microseconds(when(rng)))) ++interrupted;
    ++kills;
    verify("after killing prune, round " + std::to_string(round), false);
  }

  // A prune that completes cleans up whatever the kills left.
  auto prune = kvb({"prune", "--repo", repo_, "--grace-period", "0s"});
  ASSERT_EQ(prune.exit_code, 0) << prune.err;
  verify("after a complete prune");
  auto check = kvb({"check", "--repo", repo_});
  EXPECT_THAT(check.out, ::testing::Not(::testing::HasSubstr("in no index"))) << "a complete prune leaves no garbage";
  std::printf("crash test: %d kills (%d puts, %d prunes), %d interrupted mid-way; %zu snapshots left, all restored bit-identically\n", kills, put_rounds,
              prune_rounds, interrupted, expected_.size());
  EXPECT_GT(put_rounds, 0);
  EXPECT_GT(prune_rounds, 0);
}

}  // namespace
}  // namespace kvb::testing
