// The --copy-data progress board: what it renders, and that it draws only on a
// terminal and erases itself at the end.
#include "cli/progress_board.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

namespace kvb::cli {
namespace {

using Kind = backup::TransferEvent::Kind;

std::string contents(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string s;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
  return s;
}

TEST(ProgressBoard, RendersOneLinePerVolumeInFlightAndAnOverallBar) {
  std::map<std::string, ProgressBoard::Volume> v;
  v["prod/db rootdisk"] = {512u << 20, 1024u << 20, 2.0, false};
  v["prod/db data"] = {256u << 20, 256u << 20, 1.0, true};
  auto lines = ProgressBoard::render(v, 3, 2.0);
  ASSERT_EQ(lines.size(), 2u);  // the finished volume has no line of its own
  EXPECT_NE(lines[0].find("prod/db rootdisk"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("512.0 MiB / 1.0 GiB"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("50%"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("ETA 0:02"), std::string::npos) << lines[0];
  // Three volumes planned, one not started: the bar counts volumes (1 of 3), not bytes.
  EXPECT_NE(lines[1].find("1/3 volumes"), std::string::npos) << lines[1];
  EXPECT_EQ(lines[1].rfind("[########----------------]", 0), 0u) << lines[1];
}

TEST(ProgressBoard, BarFollowsBytesOnceEverySizeIsKnown) {
  std::map<std::string, ProgressBoard::Volume> v;
  v["a"] = {3u << 20, 4u << 20, 1.0, false};
  v["b"] = {1u << 20, 4u << 20, 1.0, false};
  auto lines = ProgressBoard::render(v, 2, 1.0);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[2].rfind("[############------------] 0/2 volumes", 0), 0u) << lines[2];
  EXPECT_NE(lines[2].find("4.0 MiB / 8.0 MiB"), std::string::npos) << lines[2];
}

TEST(ProgressBoard, LinesAreCutToTheWidth) {
  std::map<std::string, ProgressBoard::Volume> v;
  v[std::string(200, 'x')] = {1, 2, 1.0, false};
  for (const auto& l : ProgressBoard::render(v, 1, 1.0, 60)) EXPECT_LE(l.size(), 60u);
}

TEST(ProgressBoard, DrawsOnATerminalAndErasesItselfAtTheEnd) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    ProgressBoard board(true, f);
    board.update({Kind::kPlanned, "", 0, 0, 1});
    board.update({Kind::kProgress, "prod/db rootdisk", 1 << 20, 4 << 20, 0});
    board.print("an event line");
    board.update({Kind::kDone, "prod/db rootdisk", 4 << 20, 4 << 20, 0});
    board.close();
  }
  std::string out = contents(f);
  std::fclose(f);
  EXPECT_NE(out.find("prod/db rootdisk"), std::string::npos);
  EXPECT_NE(out.find("an event line"), std::string::npos);
  // The board was erased (cursor up, clear to the end) before the event line and at close.
  auto last_erase = out.rfind("\033[J");
  ASSERT_NE(last_erase, std::string::npos);
  EXPECT_EQ(out.find('\n', last_erase), std::string::npos) << "nothing drawn after the final erase";
  EXPECT_LT(out.find("\033[J"), out.find("an event line"));
}

TEST(ProgressBoard, WritesOnlyEventLinesWhenNotATerminal) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    ProgressBoard board(false, f);
    board.update({Kind::kPlanned, "", 0, 0, 1});
    board.update({Kind::kProgress, "prod/db rootdisk", 1 << 20, 4 << 20, 0});
    board.print("an event line");
    board.update({Kind::kDone, "prod/db rootdisk", 4 << 20, 4 << 20, 0});
  }
  EXPECT_EQ(contents(f), "an event line\n");
  std::fclose(f);
}

}  // namespace
}  // namespace kvb::cli
