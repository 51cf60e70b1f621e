// HandshakeGate: the limit, first come first served, withdrawal, peak.
#include "session/gate.h"

#include <vector>

#include "gtest/gtest.h"

namespace mailpool::session {
namespace {

TEST(HandshakeGateTest, AdmitsUpToTheLimitThenInOrder) {
  HandshakeGate gate(2);
  std::vector<int> granted;
  std::vector<std::unique_ptr<HandshakeGate::Ticket>> t;
  for (int i = 0; i < 5; ++i) t.push_back(gate.Acquire([&granted, i] { granted.push_back(i); }));
  EXPECT_EQ(granted, (std::vector<int>{0, 1}));
  EXPECT_EQ(gate.in_flight(), 2);
  EXPECT_EQ(gate.waiting(), 3u);
  t[1].reset();
  EXPECT_EQ(granted, (std::vector<int>{0, 1, 2}));
  t[0].reset();
  EXPECT_EQ(granted, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(gate.peak(), 2);
  EXPECT_EQ(gate.in_flight(), 2);
}

TEST(HandshakeGateTest, AWaiterThatGivesUpIsSkipped) {
  HandshakeGate gate(1);
  int a = 0, b = 0, c = 0;
  auto ta = gate.Acquire([&] { ++a; });
  auto tb = gate.Acquire([&] { ++b; });
  auto tc = gate.Acquire([&] { ++c; });
  tb.reset();  // withdrawn before its turn
  ta.reset();
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 0);
  EXPECT_EQ(c, 1);
  EXPECT_EQ(gate.waiting(), 0u);
  tc.reset();
  EXPECT_EQ(gate.in_flight(), 0);
  EXPECT_EQ(gate.total(), 2u);
}

TEST(HandshakeGateTest, ADeadServerNeverHoldsEverySlot) {
  HandshakeGate gate(4);  // one server gets at most 3
  int dead = 0, alive = 0;
  std::vector<std::unique_ptr<HandshakeGate::Ticket>> stuck;
  for (int i = 0; i < 10; ++i) stuck.push_back(gate.Acquire([&] { ++dead; }, "dead:143"));
  EXPECT_EQ(dead, 3);
  EXPECT_EQ(gate.waiting(), 7u);
  // Logins to another server pass the waiting ones for the dead server.
  auto a = gate.Acquire([&] { ++alive; }, "alive:143");
  EXPECT_EQ(alive, 1);
  auto b = gate.Acquire([&] { ++alive; }, "alive:143");
  EXPECT_EQ(alive, 1);  // the global limit (4) is reached
  a.reset();
  EXPECT_EQ(alive, 2) << "the freed slot goes to the first waiter that may use it";
  stuck[0].reset();
  EXPECT_EQ(dead, 4);
  EXPECT_EQ(gate.in_flight(), 4);
}

TEST(HandshakeGateTest, ZeroMeansNoLimit) {
  HandshakeGate gate(0);
  int granted = 0;
  std::vector<std::unique_ptr<HandshakeGate::Ticket>> t;
  for (int i = 0; i < 100; ++i) t.push_back(gate.Acquire([&] { ++granted; }));
  EXPECT_EQ(granted, 100);
  EXPECT_EQ(gate.peak(), 100);
}

}  // namespace
}  // namespace mailpool::session
