// TimerHeap: earliest deadline first, and spare slots that the engine's
// own pause timers can take when memory runs out.
#include "timer_heap.hpp"

#include <array>
#include <cerrno>

#include <gtest/gtest.h>

namespace salam::detail {
namespace {

TEST(TimerHeap, PopsTheEarliestDeadlineFirstAndRemovesFromTheMiddle) {
  TimerHeap heap;
  std::array<Operation, 5> ops;
  const int order[] = {3, 1, 4, 0, 2};
  for (int i : order) {
    ops[i].deadline = TimePoint(std::chrono::seconds(i));
    ASSERT_TRUE(heap.reserve_one());
    heap.push(ops[i]);
  }
  heap.remove(ops[1]);
  EXPECT_EQ(heap.pop(), &ops[0]);
  EXPECT_EQ(heap.pop(), &ops[2]);
  EXPECT_EQ(heap.pop(), &ops[3]);
  EXPECT_EQ(heap.pop(), &ops[4]);
  EXPECT_TRUE(heap.empty());
}

TEST(TimerHeap, EssentialTimersTakeTheSpareSlotsWhenMemoryRunsOut) {
  TimerHeap heap;
  // Ordinary timers up to the spare slots of the first 64.
  std::array<Operation, 64> ops;
  std::size_t used = 0;
  for (; used + TimerHeap::kSpare < ops.size(); ++used) {
    ASSERT_TRUE(heap.reserve_one());
    heap.push(ops[used]);
  }
  // From now on every allocation fails.
  heap.inject_faults(FaultSchedule(ENOMEM, {}, 0));
  EXPECT_FALSE(heap.reserve_one()) << "an ordinary timer fails";
  for (std::size_t i = 0; i < TimerHeap::kSpare; ++i, ++used) {
    ASSERT_TRUE(heap.reserve_one(true)) << "an essential timer has a spare slot";
    heap.push(ops[used]);
  }
  EXPECT_EQ(heap.size(), ops.size());
  EXPECT_EQ(heap.pop(), &ops[0]);
}

}  // namespace
}  // namespace salam::detail
