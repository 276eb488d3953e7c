// The priority lane (backup/freeze_gate.h): work inside a freeze window goes
// out before the freezes of VMs still waiting and never waits itself; saving
// resources after a thaw waits for the windows too. Threads meet through the gate's own counts and a
// log; no sleeps.
#include "backup/freeze_gate.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kvb::backup {
namespace {
using namespace std::chrono_literals;

auto soon() { return std::chrono::steady_clock::now() + 10s; }

// What went out, in order, as the API server would see it.
struct Wire {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> sent;
  void send(const std::string& what) {
    {
      std::lock_guard lock(mu);
      sent.push_back(what);
    }
    cv.notify_all();
  }
  bool wait_for_count(size_t n) {
    std::unique_lock lock(mu);
    return cv.wait_until(lock, soon(), [&] { return sent.size() >= n; });
  }
};

// A frozen VM has its thaw to send while `n` VMs queue for their freeze.
// Returns the order in which the thaw and the freezes went out.
std::vector<std::string> thaw_while_freezes_queue(FreezeGate& gate, int n) {
  Wire wire;
  auto window = gate.in_window();  // the frozen VM: its cut was seen, the thaw is due
  std::vector<std::jthread> vms;
  for (int i = 0; i < n; ++i) {
    vms.emplace_back([&gate, &wire, i] {
      auto slot = gate.admit({});
      if (!slot) return;
      wire.send("freeze " + std::to_string(i));
    });
  }
  if (gate.enabled()) {
    // Every freeze is queued at the gate before the thaw is sent.
    EXPECT_TRUE(gate.wait_until([n](const FreezeGate::Counts& c) { return c.waiting == static_cast<size_t>(n); }, soon()));
  } else {
    // Without the lane nothing holds them: they go out as soon as they are issued.
    EXPECT_TRUE(wire.wait_for_count(static_cast<size_t>(n)));
  }
  wire.send("thaw");
  window.reset();  // the thaw has ended
  vms.clear();     // joins
  return wire.sent;
}

TEST(FreezeGate, ThawGoesOutBeforeQueuedFreezes) {
  FreezeGate gate(8);
  auto sent = thaw_while_freezes_queue(gate, 20);
  ASSERT_EQ(sent.size(), 21u);
  EXPECT_EQ(sent.front(), "thaw");
  EXPECT_EQ(gate.counts().admitted, 20u);
}

// The baseline the lane changes: with the gate disabled the queued freezes
// overtake the thaw (this is what the test above would see without the lane).
TEST(FreezeGate, WithoutTheLaneFreezesOvertakeTheThaw) {
  FreezeGate gate(0);
  auto sent = thaw_while_freezes_queue(gate, 20);
  ASSERT_EQ(sent.size(), 21u);
  EXPECT_EQ(sent.back(), "thaw");
}

TEST(FreezeGate, WindowWorkNeverWaits) {
  FreezeGate gate(1);
  auto slot = gate.admit({});
  ASSERT_TRUE(slot);
  // A freeze in flight and another waiting: a window scope still opens at once.
  std::jthread waiter([&gate] { auto s = gate.admit({}); });
  ASSERT_TRUE(gate.wait_until([](const FreezeGate::Counts& c) { return c.waiting == 1; }, soon()));
  auto w1 = gate.in_window();
  auto w2 = gate.in_window();
  EXPECT_EQ(gate.counts().in_window, 2u);
  w1.reset();
  w2.reset();
  slot->reset();
  waiter.join();
  EXPECT_EQ(gate.counts().admitted, 2u);
  EXPECT_EQ(gate.counts().freezing, 0u);
}

TEST(FreezeGate, UpToWidthFreezesWhenNoWindowHasWork) {
  FreezeGate gate(3);
  std::vector<FreezeGate::Token> slots;
  for (int i = 0; i < 3; ++i) {
    auto s = gate.admit({});
    ASSERT_TRUE(s);
    slots.push_back(std::move(*s));
  }
  std::stop_source stop;
  std::jthread fourth([&] { EXPECT_FALSE(gate.admit(stop.get_token())); });
  ASSERT_TRUE(gate.wait_until([](const FreezeGate::Counts& c) { return c.waiting == 1; }, soon()));
  stop.request_stop();  // the fourth waits for a slot; a stop ends its wait with an error
  fourth.join();
  EXPECT_EQ(gate.counts().freezing, 3u);
}

TEST(FreezeGate, NoFreezeStartsWhileWindowsHaveWork) {
  FreezeGate gate(8);
  auto w1 = gate.in_window();
  auto w2 = gate.in_window();
  std::atomic<bool> admitted = false;
  std::jthread vm([&] {
    auto s = gate.admit({});
    admitted = true;
  });
  ASSERT_TRUE(gate.wait_until([](const FreezeGate::Counts& c) { return c.waiting == 1; }, soon()));
  w1.reset();  // one window still has work
  EXPECT_TRUE(gate.wait_until([](const FreezeGate::Counts& c) { return c.in_window == 1 && c.waiting == 1; }, soon()));
  EXPECT_FALSE(admitted);
  w2.reset();
  vm.join();
  EXPECT_TRUE(admitted);
}

TEST(FreezeGate, SavingResourcesWaitsUntilTheWindowsAreDone) {
  FreezeGate gate(8);
  Wire wire;
  auto window = gate.in_window();
  std::jthread saver([&] {
    ASSERT_TRUE(gate.quiet({}));
    wire.send("save");
  });
  ASSERT_TRUE(gate.wait_until([](const FreezeGate::Counts& c) { return c.quieting == 1; }, soon()));
  wire.send("thaw");
  window.reset();
  saver.join();
  ASSERT_EQ(wire.sent.size(), 2u);
  EXPECT_EQ(wire.sent[0], "thaw");
  EXPECT_EQ(wire.sent[1], "save");
}

// Waiters are woken one at a time (freeze_gate.cpp): when the windows drain,
// the first admitted wakes the next while slots are free, so exactly `width`
// start and the rest keep waiting; each ended freeze lets exactly one more start.
TEST(FreezeGate, SlotsFreedWakeAsManyWaitersAsThereAreSlots) {
  FreezeGate gate(3);
  auto window = gate.in_window();
  std::mutex mu;
  std::vector<FreezeGate::Token> slots;
  std::stop_source stop;
  std::vector<std::jthread> vms;
  for (int i = 0; i < 6; ++i) {
    vms.emplace_back([&] {
      auto s = gate.admit(stop.get_token());
      if (!s) return;
      std::lock_guard lock(mu);
      slots.push_back(std::move(*s));
    });
  }
  ASSERT_TRUE(gate.wait_until([](const FreezeGate::Counts& c) { return c.waiting == 6; }, soon()));
  window.reset();
  EXPECT_TRUE(gate.wait_until([](const FreezeGate::Counts& c) { return c.freezing == 3 && c.waiting == 3; }, soon()))
      << "freezing " << gate.counts().freezing << ", waiting " << gate.counts().waiting;
  {
    std::lock_guard lock(mu);
    slots.pop_back();  // one freeze ends
  }
  EXPECT_TRUE(gate.wait_until([](const FreezeGate::Counts& c) { return c.freezing == 3 && c.waiting == 2 && c.admitted == 4; }, soon()));
  stop.request_stop();  // the two left give up
  for (auto& t : vms) t.join();
  EXPECT_EQ(gate.counts().admitted, 4u);
  EXPECT_EQ(gate.counts().waiting, 0u);
}

TEST(FreezeGate, DisabledGateNeverWaits) {
  FreezeGate gate(0);
  auto window = gate.in_window();
  std::vector<FreezeGate::Token> slots;
  for (int i = 0; i < 50; ++i) {
    auto s = gate.admit({});
    ASSERT_TRUE(s);
    slots.push_back(std::move(*s));
  }
  EXPECT_TRUE(gate.quiet({}));
}

}  // namespace
}  // namespace kvb::backup
