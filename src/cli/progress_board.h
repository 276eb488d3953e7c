// ProgressBoard: the live view of `backup create --copy-data` on a terminal:
// one line per volume being copied (bytes, percent, MB/s, ETA) and an overall
// bar under them; event lines (the backup's progress lines) scroll above it.
//
// Invariants: draws only when enabled (standard error is a terminal and the
// output is not JSON); otherwise print() writes the line and nothing else, so
// logs and pipes see plain event lines. Every method is thread-safe (copies
// report from their own threads). Redraws at most four times a second except
// when a volume starts or ends; close() erases the board, leaving only the
// event lines on the screen.
#pragma once

#include "backup/data_copy.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace kvb::cli {

class ProgressBoard {
 public:
  ProgressBoard(bool enabled, std::FILE* out = stderr);
  ~ProgressBoard() { close(); }
  ProgressBoard(const ProgressBoard&) = delete;
  ProgressBoard& operator=(const ProgressBoard&) = delete;

  void print(const std::string& line);                 // an event line, above the board
  void update(const backup::TransferEvent& event);
  void close();

  struct Volume {
    uint64_t done = 0, total = 0;
    double seconds = 0;  // since it started
    bool finished = false;
  };
  // The board's lines for the volumes in flight and the overall bar (exposed for tests).
  static std::vector<std::string> render(const std::map<std::string, Volume>& volumes, size_t planned, double seconds, size_t width = 80);

 private:
  void erase_locked();
  void draw_locked();

  const bool enabled_;
  std::FILE* out_;
  std::mutex mu_;
  std::map<std::string, Volume> volumes_;
  std::map<std::string, std::chrono::steady_clock::time_point> started_;
  size_t planned_ = 0;
  size_t drawn_lines_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_draw_{};
};

}  // namespace kvb::cli
