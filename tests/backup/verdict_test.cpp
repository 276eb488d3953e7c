// The verdict is a pure function: each rule of backup/verdict.h, alone.
#include "backup/verdict.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kvb::backup {
namespace {
using kubevirt::FreezeState;
using record::Consistency;
using record::VmPhase;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

const WallTime kT0 = WallTime(std::chrono::seconds(1'800'000'000));

// A freeze that held: frozen at +100 ms, cut at +300 ms, still frozen at +400 ms, thawed.
VerdictInput held() {
  VerdictInput in;
  in.promised = Consistency::kFileSystemConsistent;
  in.froze = true;
  in.freeze_reason = "virt-freezer: \"Operation completed successfully\"";
  in.freeze_requested_at = kT0;
  in.frozen_at = kT0 + 100ms;
  in.auto_thaw = 90s;
  in.cut = ok();
  in.cuts = {{"prod/a", "uid-a", "uid-a", kT0 + 300ms}, {"prod/b", "uid-b", "uid-b", kT0 + 310ms}};
  in.held = FreezeState::kFrozen;
  in.held_at = kT0 + 400ms;
  in.held_detail = "guestosinfo fsFreezeStatus=frozen";
  in.thaw_ok = true;
  in.clock_skew = 0ms;
  return in;
}

TEST(Verdict, AFreezeThatHeldAcrossEveryCutIsFileSystemConsistent) {
  auto v = judge(held());
  EXPECT_EQ(v.phase, VmPhase::kCompleted);
  EXPECT_EQ(v.consistency, Consistency::kFileSystemConsistent) << v.reason;
}

TEST(Verdict, ASnapshotThisRunDidNotCreateNeverCounts) {
  auto in = held();
  in.cuts[1].created_uid = "";  // a leftover of the same name
  auto v = judge(in);
  EXPECT_EQ(v.phase, VmPhase::kFailed);
  EXPECT_THAT(v.reason, HasSubstr("prod/b is not the object this backup created"));
  in = held();
  in.cuts[0].seen_uid = "someone-elses";  // replaced under our name
  EXPECT_NE(judge(in).consistency, Consistency::kFileSystemConsistent);
}

TEST(Verdict, ACutBeforeTheFreezeOrAfterTheCheckIsCrashConsistent) {
  auto in = held();
  in.cuts[0].cut_at = kT0 - 5s;  // "seconds before the new freeze"
  auto v = judge(in);
  EXPECT_EQ(v.consistency, Consistency::kCrashConsistent);
  EXPECT_THAT(v.reason, HasSubstr("outside the freeze"));
  in = held();
  in.cuts[1].cut_at = kT0 + 500ms;  // after the guest was last seen frozen
  EXPECT_EQ(judge(in).consistency, Consistency::kCrashConsistent);
  in.clock_skew = 200ms;  // within the storage clock's allowed skew
  EXPECT_EQ(judge(in).consistency, Consistency::kFileSystemConsistent);
  in = held();
  in.cuts[0].cut_at.reset();
  EXPECT_EQ(judge(in).consistency, Consistency::kCrashConsistent);
}

TEST(Verdict, AGuestNoLongerFrozenBeforeTheThawIsCrashConsistent) {
  auto in = held();
  in.held = FreezeState::kThawed;  // an auto-thaw, another backup's thaw, an agent restart
  auto v = judge(in);
  EXPECT_EQ(v.consistency, Consistency::kCrashConsistent);
  EXPECT_THAT(v.reason, HasSubstr("no longer frozen"));
  in.held = FreezeState::kError;  // could not be checked: nothing proven
  in.held_detail = "403 Forbidden";
  v = judge(in);
  EXPECT_EQ(v.consistency, Consistency::kCrashConsistent);
  EXPECT_THAT(v.reason, HasSubstr("403 Forbidden"));
}

TEST(Verdict, AnAutoThawThatCouldFireBeforeTheCutIsCrashConsistent) {
  auto in = held();
  in.auto_thaw = 1s;
  in.cuts[1].cut_at = kT0 + 1100ms;
  in.held_at = kT0 + 1200ms;
  auto v = judge(in);
  EXPECT_EQ(v.consistency, Consistency::kCrashConsistent);
  EXPECT_THAT(v.reason, HasSubstr("auto-thaw"));
}

TEST(Verdict, AGuestThatThawedItselfIsCrashConsistent) {
  auto in = held();
  in.guest_thawed_itself = true;
  in.thaw_reason = "the guest thawed itself before the thaw (Windows VSS holds a freeze 10 s at most)";
  auto v = judge(in);
  EXPECT_EQ(v.consistency, Consistency::kCrashConsistent);
  EXPECT_THAT(v.reason, HasSubstr("VSS"));
}

TEST(Verdict, AnUnconfirmedThawFailsTheVmWhateverTheCuts) {
  auto in = held();
  in.thaw_ok = false;
  in.thaw_reason = "401 Unauthorized";
  auto v = judge(in);
  EXPECT_EQ(v.phase, VmPhase::kFailed);
  EXPECT_THAT(v.reason, HasSubstr("not confirmed"));
  EXPECT_THAT(v.reason, HasSubstr("kvbackup recover"));
}

TEST(Verdict, ACutThatFailedFailsTheVmAndSaysTheGuestWasThawedFirst) {
  auto in = held();
  in.cut = Error(Errc::kTimeout, "the snapshots were not cut within --freeze-deadline 2s");
  auto v = judge(in);
  EXPECT_EQ(v.phase, VmPhase::kFailed);
  EXPECT_EQ(v.consistency, Consistency::kNone);
  EXPECT_THAT(v.reason, HasSubstr("thawed first"));
}

TEST(Verdict, WithoutAFreezeTheVmIsWhatWasPromisedOrCrashConsistent) {
  auto in = held();
  in.froze = false;
  in.freeze_reason = "no guest agent";
  auto v = judge(in);
  EXPECT_EQ(v.consistency, Consistency::kCrashConsistent);
  EXPECT_EQ(v.reason, "no guest agent");
  in.promised = Consistency::kOffline;
  in.freeze_reason.clear();
  in.promise_reason = "the VM is not running";
  EXPECT_EQ(judge(in).consistency, Consistency::kOffline);
}

TEST(Verdict, InAGroupEveryCutOfTheGroupMustFallInsideThisVmsFreeze) {
  auto in = held();
  in.group = true;
  in.cuts.push_back({"prod/other", "uid-o", "uid-o", kT0 + 50ms});  // another VM's cut, before this VM froze
  EXPECT_EQ(judge(in).consistency, Consistency::kCrashConsistent);
  in.cuts.back().cut_at = kT0 + 350ms;
  auto v = judge(in);
  EXPECT_EQ(v.consistency, Consistency::kFileSystemConsistent);
  EXPECT_THAT(v.reason, HasSubstr("whole group"));
}

}  // namespace
}  // namespace kvb::backup
