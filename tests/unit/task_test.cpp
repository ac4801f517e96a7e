#include <coroutine>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <salam/scope.hpp>
#include <salam/task.hpp>

namespace salam {
namespace {

// A manual "event" that a test resumes by hand, to suspend tasks without a
// loop.
struct Gate {
  std::coroutine_handle<> waiter;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> handle) noexcept { waiter = handle; }
  void await_resume() const noexcept {}
  void open() { std::exchange(waiter, {}).resume(); }
};

Task<int> answer(std::vector<std::string>& trace) {
  trace.push_back("answer runs");
  co_return 42;
}

Task<> outer(std::vector<std::string>& trace, int& result) {
  trace.push_back("outer starts");
  Task<int> inner = answer(trace);
  trace.push_back("inner created");
  result = co_await std::move(inner);
  trace.push_back("outer ends");
}

TEST(Task, IsLazyAndRunsWhenStarted) {
  std::vector<std::string> trace;
  int result = 0;
  TaskScope scope;
  Task<> task = outer(trace, result);
  EXPECT_TRUE(trace.empty()) << "creating a task must not run it";
  scope.spawn(std::move(task));
  EXPECT_EQ(trace, (std::vector<std::string>{"outer starts", "inner created", "answer runs",
                                             "outer ends"}));
  EXPECT_EQ(result, 42);
  EXPECT_EQ(scope.active(), 0u);
}

Task<int> throws_after(Gate& gate) {
  co_await gate;
  throw std::runtime_error("boom");
}

Task<> catches(Gate& gate, std::string& caught) {
  try {
    co_await throws_after(gate);
  } catch (const std::runtime_error& e) {
    caught = e.what();
  }
}

TEST(Task, ExceptionReachesTheAwaiter) {
  Gate gate;
  std::string caught;
  TaskScope scope;
  scope.spawn(catches(gate, caught));
  EXPECT_EQ(scope.active(), 1u);
  gate.open();
  EXPECT_EQ(caught, "boom");
  EXPECT_EQ(scope.active(), 0u);
}

Task<> fails(Gate& gate) {
  co_await gate;
  throw std::runtime_error("handler failed");
}

Task<> counts(Gate& gate, int& finished) {
  co_await gate;
  ++finished;
}

TEST(TaskScope, ContainsExceptionsAndKeepsOthersRunning) {
  std::vector<std::string> errors;
  TaskScope scope([&](std::exception_ptr error) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      errors.emplace_back(e.what());
    }
  });
  Gate failing;
  Gate other;
  int finished = 0;
  scope.spawn(fails(failing));
  scope.spawn(counts(other, finished));
  EXPECT_EQ(scope.active(), 2u);
  failing.open();
  EXPECT_EQ(errors, std::vector<std::string>{"handler failed"});
  EXPECT_EQ(scope.active(), 1u);
  other.open();
  EXPECT_EQ(finished, 1);
  EXPECT_EQ(scope.active(), 0u);
}

struct Tracker {
  std::vector<std::string>* trace;
  std::string name;
  ~Tracker() {
    if (trace) trace->push_back("destroy " + name);
  }
};

Task<> child(std::vector<std::string>& trace, Gate& gate) {
  Tracker tracker{&trace, "child"};
  co_await gate;
  trace.push_back("child done");
}

Task<> parent(std::vector<std::string>& trace, Gate& gate) {
  Tracker tracker{&trace, "parent"};
  co_await child(trace, gate);
  trace.push_back("parent resumed");
}

TEST(Task, FramesAreDestroyedInOrderWhenTheyFinish) {
  std::vector<std::string> trace;
  Gate gate;
  TaskScope scope;
  scope.spawn(parent(trace, gate));
  EXPECT_TRUE(trace.empty());
  gate.open();
  EXPECT_EQ(trace, (std::vector<std::string>{"child done", "destroy child", "parent resumed",
                                             "destroy parent"}));
}

TEST(Task, UnstartedTaskIsDestroyedWithoutRunning) {
  std::vector<std::string> trace;
  {
    Gate gate;
    Task<> task = child(trace, gate);
  }
  EXPECT_TRUE(trace.empty()) << "the body of a task that never started must not run";
}

Task<> joiner(TaskScope& scope, bool& joined) {
  co_await scope.join();
  joined = true;
}

TEST(TaskScope, JoinCompletesWhenTheLastTaskEnds) {
  TaskScope scope;
  TaskScope outer_scope;
  Gate first;
  Gate second;
  int finished = 0;
  bool joined = false;
  scope.spawn(counts(first, finished));
  scope.spawn(counts(second, finished));
  outer_scope.spawn(joiner(scope, joined));
  EXPECT_FALSE(joined);
  first.open();
  EXPECT_FALSE(joined);
  second.open();
  EXPECT_TRUE(joined);
  EXPECT_EQ(outer_scope.active(), 0u);
}

Task<int> synchronous(int value) {
  co_return value;
}

Task<> deep_chain(int depth, long& total) {
  // Each await completes synchronously; symmetric transfer keeps the stack
  // flat however long the chain.
  for (int i = 0; i < depth; ++i)
    total += co_await synchronous(1);
}

TEST(Task, LongSynchronousChainsDoNotGrowTheStack) {
  long total = 0;
  TaskScope scope;
  scope.spawn(deep_chain(1'000'000, total));
  EXPECT_EQ(total, 1'000'000);
}

}  // namespace
}  // namespace salam
