// Fuzz targets: each takes arbitrary bytes and runs one parser of untrusted
// input over them. A target must never crash, hang or leak, whatever the
// input; errors are values. fuzz_regression_test runs them over the seed
// corpus and deterministic mutations of it in every test run (under ASan and
// UBSan). Built with -DKVB_FUZZ_TARGET=<name> and clang's -fsanitize=fuzzer,
// targets.cpp is a libFuzzer entry point (not wired into the build yet).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kvb::fuzz {

using Target = int (*)(const uint8_t* data, size_t size);

struct NamedTarget {
  const char* name;  // also the corpus directory under tests/fuzz/corpus/
  Target run;
};

const std::vector<NamedTarget>& targets();

}  // namespace kvb::fuzz
