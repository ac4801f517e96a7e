// Work on the server's shards: tasks started by Server::on_each_shard, the
// handler factories' place (the shard's running loop), and tasks spawned on
// a shard's loop, on both backends.
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include <salam/salam.hpp>

#include "../support/backends.hpp"
#include "../support/clients.hpp"

namespace salam {
namespace {

using namespace std::chrono_literals;

struct Ticks {
  std::mutex mutex;
  std::set<unsigned> shards;
  std::set<const Loop*> loops;
  std::atomic<int> ticks = 0;
  std::atomic<int> ended = 0;
  unsigned count = 0;
};

Task<> tick(ShardContext shard, Ticks& seen) {
  {
    std::lock_guard lock(seen.mutex);
    seen.shards.insert(shard.index());
    seen.loops.insert(&shard.loop());
    seen.count = shard.count();
  }
  for (;;) {
    // The awaited value is named first: GCC 12 miscompiles a co_await in
    // a loop condition (see coroutine_patterns_test.cpp).
    const bool stopping = co_await shard.wait_for_stop(10ms);
    if (stopping) break;
    ++seen.ticks;
  }
  EXPECT_TRUE(shard.stopping());
  ++seen.ended;
}

class ShardTaskTest : public ::testing::TestWithParam<BackendKind> {
 protected:
  void SetUp() override { SALAM_REQUIRE_BACKEND(GetParam()); }
  ServerOptions options() const {
    ServerOptions options;
    options.threads = 3;
    options.loop.backend = GetParam();
    return options;
  }
};

TEST_P(ShardTaskTest, RunsOnEveryShardAndEndsAtOnceWhenTheServerStops) {
  Ticks seen;
  Server server(options());
  server.on_each_shard([&seen](ShardContext shard) { return tick(shard, seen); });
  server.start();
  std::this_thread::sleep_for(100ms);
  const TimePoint stopping = Clock::now();
  server.stop(10s);  // a long drain: the tasks must not need it
  server.wait();
  // Tolerance: the tasks end on their shards' next turn; 2 s is generous.
  EXPECT_LT(Clock::now() - stopping, 2s);
  EXPECT_EQ(seen.ended.load(), 3);
  EXPECT_EQ(seen.shards, (std::set<unsigned>{0, 1, 2}));
  EXPECT_EQ(seen.loops.size(), 3u) << "each on its own shard's loop";
  EXPECT_EQ(seen.count, 3u);
  EXPECT_GT(seen.ticks.load(), 3) << "they ran while the server did";
  EXPECT_EQ(server.cancelled_at_drain(), 0u);
}

TEST_P(ShardTaskTest, CannotBeAddedAfterStart) {
  Server server(options());
  server.start();
  EXPECT_THROW(server.on_each_shard([](ShardContext) -> Task<> { co_return; }), std::logic_error);
}

Task<> greet(Connection client) {
  co_await client.write_all("Hello, client!", 5s);
}

TEST_P(ShardTaskTest, HandlerFactoriesRunInTheShardsLoop) {
  std::mutex mutex;
  std::set<Loop*> loops;
  std::set<unsigned> shards;
  Server server(options());
  server.listen({.address = "127.0.0.1:0"}, HandlerFactory([&] {
                  std::lock_guard lock(mutex);
                  loops.insert(Loop::current_or_null());
                  // Per-shard state is indexed by the shard the factory runs on.
                  const auto shard = ShardContext::current();
                  EXPECT_TRUE(shard.has_value());
                  if (shard) {
                    shards.insert(shard->index());
                    EXPECT_EQ(&shard->loop(), Loop::current_or_null());
                  }
                  return Handler(greet);
                }));
  EXPECT_FALSE(ShardContext::current().has_value()) << "not on a shard's thread";
  server.start();
  EXPECT_EQ(loops.size(), 3u);
  EXPECT_EQ(loops.count(nullptr), 0u) << "Loop::current() is the shard's in a factory";
  EXPECT_EQ(shards, (std::set<unsigned>{0, 1, 2}));
  server.stop(1s);
  server.wait();
}

TEST_P(ShardTaskTest, AFactoryThatThrowsFailsTheStart) {
  Server server(options());
  server.listen({.address = "127.0.0.1:0"},
                HandlerFactory([]() -> Handler { throw std::runtime_error("no handler today"); }));
  EXPECT_THROW(server.start(), std::runtime_error);
}

Task<> tick_for_ever(Loop& loop, std::atomic<int>& ended) {
  for (;;) {
    std::error_code error = co_await loop.sleep(10ms);
    if (error) break;  // cancelled once the shard has drained
  }
  ++ended;
}

// Spawns a task on its shard's loop that nothing else ends.
Task<> greet_and_spawn(Connection client, std::atomic<int>& ended) {
  client.loop().spawn(tick_for_ever(client.loop(), ended));
  co_await client.write_all("Hello, client!", 5s);
}

TEST_P(ShardTaskTest, TasksSpawnedOnAShardsLoopDoNotKeepTheServerRunning) {
  std::atomic<int> ended = 0;
  Server server(options());
  server.listen({.address = "127.0.0.1:0"},
                [&ended](Connection client) { return greet_and_spawn(std::move(client), ended); });
  server.start();
  const auto stats =
      testing::run_exchanges(server.local_socket_address(0), 5, 5, "", "Hello, client!", 10s);
  EXPECT_EQ(stats.ok, 5) << stats.first_problem;
  const TimePoint stopping = Clock::now();
  server.stop(1s);
  server.wait();  // hung for ever before: nothing cancelled the spawned tasks
  EXPECT_LT(Clock::now() - stopping, 3s);
  EXPECT_EQ(ended.load(), 5);
}

SALAM_INSTANTIATE_FOR_BACKENDS(ShardTaskTest);

}  // namespace
}  // namespace salam
