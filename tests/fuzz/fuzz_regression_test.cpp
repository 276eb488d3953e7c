// Every fuzz target over its seed corpus (tests/fuzz/corpus/<target>/) and
// over deterministic mutations of each seed (bit flips, byte insertions,
// deletions, truncations, splices), under ASan/UBSan in every test run. A
// crash, sanitizer report or hang fails the test. Coverage-guided fuzzing
// with libFuzzer is not wired into the build yet (see targets.h).
#include "tests/fuzz/targets.h"

#include "common/atomic_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>

namespace kvb::fuzz {
namespace {

std::vector<std::string> corpus(const std::string& target) {
  std::vector<std::string> out;
  auto dir = std::filesystem::path(KVB_SOURCE_DIR) / "tests/fuzz/corpus" / target;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (auto t = read_file(e.path())) out.push_back(*t);
  }
  return out;
}

std::string mutate(const std::string& seed, const std::string& other, std::mt19937& rng) {
  std::string s = seed;
  std::uniform_int_distribution<int> op(0, 5);
  int rounds = 1 + static_cast<int>(rng() % 4);
  for (int r = 0; r < rounds; ++r) {
    size_t pos = s.empty() ? 0 : rng() % s.size();
    switch (op(rng)) {
      case 0: if (!s.empty()) s[pos] = static_cast<char>(s[pos] ^ (1 << (rng() % 8))); break;
      case 1: s.insert(pos, 1, static_cast<char>(rng() % 256)); break;
      case 2: if (!s.empty()) s.erase(pos, 1 + rng() % 8); break;
      case 3: s.resize(pos); break;
      case 4: s.insert(pos, other.substr(0, rng() % (other.size() + 1))); break;
      case 5: {
        static const char* tokens[] = {"{", "}", "[", "]", "\"", ":", ",", "- ", "\n", "null", "-1", "1e999", "\\u0000",
                                       "!=", "in (", "${WAIT_CMD}", "{{vm.name}}", "*", "&a", "<<: *a"};
        s.insert(pos, tokens[rng() % (sizeof tokens / sizeof *tokens)]);
        break;
      }
    }
  }
  return s;
}

class FuzzRegression : public ::testing::TestWithParam<NamedTarget> {};

TEST_P(FuzzRegression, SeedsAndMutationsNeverCrash) {
  const auto& t = GetParam();
  auto seeds = corpus(t.name);
  ASSERT_FALSE(seeds.empty()) << "no seed corpus for " << t.name;
  std::mt19937 rng(20261125);
  for (const auto& s : seeds) {
    EXPECT_EQ(t.run(reinterpret_cast<const uint8_t*>(s.data()), s.size()), 0);
    for (int i = 0; i < 2000; ++i) {
      std::string m = mutate(s, seeds[rng() % seeds.size()], rng);
      t.run(reinterpret_cast<const uint8_t*>(m.data()), m.size());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzRegression, ::testing::ValuesIn(targets()),
                         [](const ::testing::TestParamInfo<NamedTarget>& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace kvb::fuzz
