// SALAM_FAULTS, parsed: which operations fail, with which error and when
// (every Nth, after N, seeded chance), and a clear error for anything
// malformed.
#include "io/fault_plan.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace salam::detail {
namespace {

// Which of the next `count` operations fail: 'x' for a failure, '.' else.
std::string pattern(FaultSchedule schedule, int count) {
  std::string out;
  for (int i = 0; i < count; ++i)
    out += schedule.fails() ? 'x' : '.';
  return out;
}

FaultSchedule only(const std::string& text, FaultKind kind) {
  FaultPlan plan = parse_fault_plan(text);
  EXPECT_TRUE(plan[kind].has_value()) << text;
  return *plan[kind];
}

TEST(FaultPlanTest, ParsesARuleForEveryKind) {
  FaultPlan plan = parse_fault_plan(
      "accept=EMFILE:every=50;read=ECONNRESET:p=0.01;write=EPIPE:after=3;timer=ENOMEM:every=7;"
      "buffer=ENOBUFS:every=10;seed=42");
  ASSERT_TRUE(plan[FaultKind::accept] && plan[FaultKind::read] && plan[FaultKind::write] &&
              plan[FaultKind::timer] && plan[FaultKind::buffer]);
  EXPECT_EQ(plan[FaultKind::accept]->error(), EMFILE);
  EXPECT_EQ(plan[FaultKind::read]->error(), ECONNRESET);
  EXPECT_EQ(plan[FaultKind::write]->error(), EPIPE);
  EXPECT_EQ(plan[FaultKind::timer]->error(), ENOMEM);
  EXPECT_EQ(plan[FaultKind::buffer]->error(), ENOBUFS);
}

TEST(FaultPlanTest, KindsWithoutARuleNeverFail) {
  FaultPlan plan = parse_fault_plan("write=EPIPE:every=1");
  EXPECT_FALSE(plan[FaultKind::accept] || plan[FaultKind::read] || plan[FaultKind::timer] ||
               plan[FaultKind::buffer]);
}

TEST(FaultPlanTest, EveryNthFails) {
  EXPECT_EQ(pattern(only("read=EIO:every=3", FaultKind::read), 9), "..x..x..x");
  EXPECT_EQ(pattern(only("read=EIO:every=1", FaultKind::read), 4), "xxxx");
}

TEST(FaultPlanTest, EverythingAfterTheFirstNFails) {
  EXPECT_EQ(pattern(only("write=EPIPE:after=3", FaultKind::write), 7), "...xxxx");
  EXPECT_EQ(pattern(only("write=EPIPE:after=0", FaultKind::write), 3), "xxx");
}

TEST(FaultPlanTest, AfterCombinesWithEveryAndChance) {
  EXPECT_EQ(pattern(only("write=EPIPE:after=2:every=2", FaultKind::write), 8), "...x.x.x");
  EXPECT_EQ(pattern(only("write=EPIPE:every=2:after=2", FaultKind::write), 8), "...x.x.x");
  EXPECT_EQ(pattern(only("write=EPIPE:after=4:p=1", FaultKind::write), 6), "....xx");
}

TEST(FaultPlanTest, AChanceIsDeterministicForASeed) {
  const std::string first = pattern(only("read=EIO:p=0.3;seed=42", FaultKind::read), 2000);
  EXPECT_EQ(pattern(only("seed=42;read=EIO:p=0.3", FaultKind::read), 2000), first);
  EXPECT_NE(pattern(only("read=EIO:p=0.3;seed=43", FaultKind::read), 2000), first);
  // Tolerance: 600 of 2000 expected; the stream is fixed, so this never flaps.
  const auto failures = std::count(first.begin(), first.end(), 'x');
  EXPECT_GT(failures, 500);
  EXPECT_LT(failures, 700);
  EXPECT_EQ(pattern(only("read=EIO:p=0", FaultKind::read), 100), std::string(100, '.'));
  EXPECT_EQ(pattern(only("read=EIO:p=1", FaultKind::read), 100), std::string(100, 'x'));
}

TEST(FaultPlanTest, EachKindDrawsFromItsOwnStream) {
  FaultPlan plan = parse_fault_plan("read=EIO:p=0.5;write=EPIPE:p=0.5;seed=7");
  EXPECT_NE(pattern(*plan[FaultKind::read], 200), pattern(*plan[FaultKind::write], 200));
}

TEST(FaultPlanTest, TheDefaultSeedIsZero) {
  EXPECT_EQ(pattern(only("read=EIO:p=0.5", FaultKind::read), 200),
            pattern(only("read=EIO:p=0.5;seed=0", FaultKind::read), 200));
}

struct Malformed {
  const char* text;
  const char* says;
};

TEST(FaultPlanTest, MalformedTextIsAClearError) {
  const std::vector<Malformed> cases = {
      {"read", "expected KIND=ERROR:WHEN or seed=N"},
      {"read=ECONNRESET", "say when it fails"},
      {"read=ECONNRESET:", "say when it fails"},
      {"read=ECONNRESET:every=2:", "nothing after ':'"},
      {"reed=ECONNRESET:every=2", "unknown operation 'reed'"},
      {"read=ECONNRESTE:every=2", "unknown error 'ECONNRESTE'"},
      {"read=econnreset:every=2", "unknown error 'econnreset'"},
      {"read=ECANCELED:every=2", "unknown error 'ECANCELED'"},
      {"read=EAGAIN:every=2", "unknown error 'EAGAIN'"},
      {"read=EIO:every=0", "every= counts from 1"},
      {"read=EIO:every=-1", "expected a whole number, not '-1'"},
      {"read=EIO:every=2x", "expected a whole number, not '2x'"},
      {"read=EIO:every=", "expected a whole number, not ''"},
      {"read=EIO:every=2:p=0.5", "at most one after=, and one of every= or p="},
      {"read=EIO:after=1:after=2", "at most one after="},
      {"read=EIO:p=1.5", "p= takes a probability from 0 to 1, not '1.5'"},
      {"read=EIO:p=1e-2", "not '1e-2'"},
      {"read=EIO:p=nan", "not 'nan'"},
      {"read=EIO:p=0.1.2", "not '0.1.2'"},
      {"read=EIO:sometimes", "unknown condition 'sometimes'"},
      {"read=EIO:every=2;read=EPIPE:every=3", "a second rule for 'read'"},
      {"read=EIO:every=2;", "an empty rule"},
      {";read=EIO:every=2", "an empty rule"},
      {"read=EIO:every=2;;write=EPIPE:every=2", "an empty rule"},
      {"read=EIO:every=2 ", "not '2 '"},
      {" read=EIO:every=2", "unknown operation ' read'"},
      {"seed=1;seed=2", "seed= is given twice"},
      {"seed=x", "expected a whole number, not 'x'"},
      {"timer=EIO:every=2", "a timer fails only with ENOMEM"},
      {"buffer=ENOMEM:every=2", "a buffer fails only with ENOBUFS"},
      {"read=EIO:every=2\n", "'2\\x0a'"},
  };
  for (const Malformed& bad : cases) {
    try {
      parse_fault_plan(bad.text);
      ADD_FAILURE() << "accepted: " << bad.text;
    } catch (const std::invalid_argument& e) {
      const std::string message = e.what();
      EXPECT_TRUE(message.starts_with("SALAM_FAULTS: ")) << message;
      EXPECT_NE(message.find(bad.says), std::string::npos)
          << "for " << bad.text << ": " << message << "\nshould say: " << bad.says;
    }
  }
}

}  // namespace
}  // namespace salam::detail
