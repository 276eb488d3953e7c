// ProgressLine: one self-rewriting line on a terminal for long transfers:
// bytes done of the total, percent, throughput and time left.
//
// Invariants: writes nothing unless standard error is a terminal; redraws at
// most four times a second; finish() ends the line so later output starts clean.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace kvb::cli {

class ProgressLine {
 public:
  explicit ProgressLine(std::string label);
  ~ProgressLine() { finish(); }
  void update(uint64_t done, uint64_t total);  // total 0: unknown
  void finish();

  // The text of one line (exposed for tests): "put disk  1.5 GiB / 4.0 GiB  37%  812 MiB/s  ETA 0:03".
  static std::string render(const std::string& label, uint64_t done, uint64_t total, double seconds);

 private:
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

std::string human_bytes(uint64_t bytes);

}  // namespace kvb::cli
