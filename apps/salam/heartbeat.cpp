#include "heartbeat.hpp"

#include <salam/shard_context.hpp>

namespace salam::daemon {

Heartbeat::Heartbeat(unsigned shards, Duration period)
    : count_(shards), period_(period), stamps_(std::make_unique<Stamp[]>(shards)) {}

namespace {

Task<> beat(ShardContext shard, std::atomic<Clock::rep>& stamp, Duration period) {
  for (;;) {
    stamp.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    // Named first: GCC 12 miscompiles a co_await in a loop condition (see
    // coroutine_patterns_test.cpp).
    const bool stopping = co_await shard.wait_for_stop(period);
    if (stopping) break;
  }
}

}  // namespace

ShardTask Heartbeat::task() {
  return [this](ShardContext shard) { return beat(shard, stamps_[shard.index()].ticks, period_); };
}

TimePoint Heartbeat::last_beat(unsigned index) const noexcept {
  return TimePoint(Duration(stamps_[index].ticks.load(std::memory_order_relaxed)));
}

std::optional<unsigned> Heartbeat::silent_shard(TimePoint now, Duration silence) const noexcept {
  for (unsigned i = 0; i < count_; ++i) {
    if (now - last_beat(i) > silence) return i;
  }
  return std::nullopt;
}

}  // namespace salam::daemon
