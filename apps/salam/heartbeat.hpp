// Heartbeat: proof that every shard's loop still turns.
//
// A task on each shard (Server::on_each_shard) stamps the time every
// `period`. A shard that is wedged — a handler that never yields, a
// blocking call — stops stamping, and the readers see it: the systemd
// watchdog (Watchdog) pings only while every shard stamps, and /live
// answers 503 once a shard has been silent too long.
//
// Threading: each shard writes only its own stamp; any thread reads.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

#include <salam/server.hpp>
#include <salam/time.hpp>

namespace salam::daemon {

class Heartbeat {
 public:
  Heartbeat(unsigned shards, Duration period);

  // The task to run on every shard.
  ShardTask task();
  Duration period() const noexcept { return period_; }
  unsigned shards() const noexcept { return count_; }
  // When shard `index` last stamped (TimePoint{} before its first beat).
  TimePoint last_beat(unsigned index) const noexcept;
  // A shard whose last beat is older than `now - silence`, if any.
  std::optional<unsigned> silent_shard(TimePoint now, Duration silence) const noexcept;

 private:
  struct alignas(64) Stamp {
    std::atomic<Clock::rep> ticks{0};
  };
  unsigned count_;
  Duration period_;
  std::unique_ptr<Stamp[]> stamps_;
};

}  // namespace salam::daemon
