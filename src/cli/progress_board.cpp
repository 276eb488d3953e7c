#include "cli/progress_board.h"

#include "cli/progress.h"

#include <algorithm>

namespace kvb::cli {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string bar(double fraction, size_t width) {
  fraction = std::clamp(fraction, 0.0, 1.0);
  auto full = static_cast<size_t>(fraction * static_cast<double>(width) + 0.5);
  return "[" + std::string(full, '#') + std::string(width - full, '-') + "]";
}

}  // namespace

ProgressBoard::ProgressBoard(bool enabled, std::FILE* out) : enabled_(enabled), out_(out) {}

std::vector<std::string> ProgressBoard::render(const std::map<std::string, Volume>& volumes, size_t planned, double seconds,
                                               size_t width) {
  std::vector<std::string> lines;
  uint64_t done = 0, total = 0;
  size_t finished = 0;
  for (const auto& [item, v] : volumes) {
    done += v.done;
    total += v.total;
    if (v.finished) {
      ++finished;
      continue;
    }
    std::string line = ProgressLine::render("  " + item, v.done, v.total, v.seconds);
    if (line.size() > width) line.resize(width);
    lines.push_back(std::move(line));
  }
  size_t count = std::max(planned, volumes.size());
  // Volumes not started yet have no size: the bar counts volumes until every size is known.
  bool sizes_known = volumes.size() >= count && std::all_of(volumes.begin(), volumes.end(), [](const auto& e) { return e.second.total > 0; });
  double fraction = sizes_known && total > 0 ? static_cast<double>(done) / static_cast<double>(total)
                                             : (count ? static_cast<double>(finished) / static_cast<double>(count) : 0.0);
  std::string overall = bar(fraction, 24) + " " + std::to_string(finished) + "/" + std::to_string(count) + " volumes";
  overall += ProgressLine::render("", done, sizes_known ? total : 0, seconds);
  if (overall.size() > width) overall.resize(width);
  lines.push_back(std::move(overall));
  return lines;
}

void ProgressBoard::print(const std::string& line) {
  std::lock_guard lock(mu_);
  erase_locked();
  std::fprintf(out_, enabled_ ? "\033[2m%s\033[0m\n" : "%s\n", line.c_str());
  if (enabled_ && !volumes_.empty()) draw_locked();
  std::fflush(out_);
}

void ProgressBoard::update(const backup::TransferEvent& e) {
  if (!enabled_) return;
  using Kind = backup::TransferEvent::Kind;
  std::lock_guard lock(mu_);
  bool force = false;
  switch (e.kind) {
    case Kind::kPlanned:
      planned_ += e.count;
      return;
    case Kind::kProgress: {
      auto [it, fresh] = started_.try_emplace(e.item, Clock::now());
      auto& v = volumes_[e.item];
      v.done = e.done;
      v.total = e.total;
      v.seconds = since(it->second);
      force = fresh;
      break;
    }
    case Kind::kDone:
    case Kind::kFailed: {
      auto& v = volumes_[e.item];
      if (e.kind == Kind::kDone) v.done = v.total = e.total;
      v.finished = true;
      force = true;
      break;
    }
  }
  if (!force && Clock::now() - last_draw_ < std::chrono::milliseconds(250)) return;
  erase_locked();
  draw_locked();
  std::fflush(out_);
}

void ProgressBoard::close() {
  std::lock_guard lock(mu_);
  erase_locked();
  std::fflush(out_);
}

void ProgressBoard::erase_locked() {
  if (drawn_lines_ == 0) return;
  // Up to the board's first line, then clear to the end of the screen.
  std::fprintf(out_, "\033[%zuF\033[J", drawn_lines_);
  drawn_lines_ = 0;
}

void ProgressBoard::draw_locked() {
  auto lines = render(volumes_, planned_, since(start_));
  for (const auto& l : lines) std::fprintf(out_, "%s\033[K\n", l.c_str());
  drawn_lines_ = lines.size();
  last_draw_ = Clock::now();
}

}  // namespace kvb::cli
