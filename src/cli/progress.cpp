#include "cli/progress.h"

#include <unistd.h>

#include <cstdio>

namespace kvb::cli {

std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

ProgressLine::ProgressLine(std::string label)
    : label_(std::move(label)), enabled_(::isatty(STDERR_FILENO) == 1), start_(std::chrono::steady_clock::now()), last_(start_) {}

std::string ProgressLine::render(const std::string& label, uint64_t done, uint64_t total, double seconds) {
  std::string line = label + "  " + human_bytes(done);
  if (total > 0) line += " / " + human_bytes(total);
  double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
  char buf[96];
  if (total > 0) {
    std::snprintf(buf, sizeof buf, "  %3.0f%%", 100.0 * static_cast<double>(done) / static_cast<double>(total));
    line += buf;
  }
  line += "  " + human_bytes(static_cast<uint64_t>(rate)) + "/s";
  if (total > 0 && rate > 0 && done <= total) {
    auto left = static_cast<uint64_t>(static_cast<double>(total - done) / rate + 0.5);
    std::snprintf(buf, sizeof buf, "  ETA %llu:%02llu", static_cast<unsigned long long>(left / 60), static_cast<unsigned long long>(left % 60));
    line += buf;
  }
  return line;
}

void ProgressLine::update(uint64_t done, uint64_t total) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_ < std::chrono::milliseconds(250)) return;
  last_ = now;
  drawn_ = true;
  auto line = render(label_, done, total, std::chrono::duration<double>(now - start_).count());
  std::fprintf(stderr, "\r%s\033[K", line.c_str());
  std::fflush(stderr);
}

void ProgressLine::finish() {
  if (drawn_) std::fputc('\n', stderr);
  drawn_ = false;
}

}  // namespace kvb::cli
