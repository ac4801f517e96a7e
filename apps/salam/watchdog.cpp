#include "watchdog.hpp"

#include <algorithm>
#include <cstdint>

#include <systemd/sd-daemon.h>

#include <salam/log.hpp>

namespace salam::daemon {

Duration Watchdog::interval_from_environment() noexcept {
  std::uint64_t microseconds = 0;
  if (sd_watchdog_enabled(0, &microseconds) <= 0) return Duration::zero();
  return std::chrono::microseconds(microseconds);
}

Duration Watchdog::heartbeat_period(Duration interval) noexcept {
  // Pings go every half interval; a beat every quarter puts at least one
  // between any two pings, even if a busy shard's timer fires late.
  return std::clamp<Duration>(interval / 4, std::chrono::milliseconds(10), std::chrono::seconds(1));
}

Watchdog::Watchdog(const Heartbeat& heartbeat, Duration interval)
    : heartbeat_(heartbeat), interval_(interval) {}

Watchdog::~Watchdog() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Watchdog::start() {
  thread_ = std::thread([this] { run(); });
}

void Watchdog::run() noexcept {
  log::info("systemd watchdog: pinging every {} ms while every shard turns",
            std::chrono::duration_cast<std::chrono::milliseconds>(interval_ / 2).count());
  log::flush_thread_buffer();
  TimePoint last_ping = Clock::now();
  bool stalled = false;
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, interval_ / 2, [this] { return stopping_; })) {
    const TimePoint now = Clock::now();
    // Every shard must have beaten since the last ping.
    std::optional<unsigned> silent;
    for (unsigned i = 0; i < heartbeat_.shards() && !silent; ++i) {
      if (heartbeat_.last_beat(i) <= last_ping) silent = i;
    }
    if (!silent) {
      (void)sd_notify(0, "WATCHDOG=1");
      last_ping = now;
      if (stalled) log::warning("systemd watchdog: every shard turns again; pinging again");
      stalled = false;
    } else if (!stalled) {
      stalled = true;
      log::error(
          "systemd watchdog: shard {} has not turned for {} ms; not pinging, so that "
          "systemd sees the service hang",
          *silent,
          std::chrono::duration_cast<std::chrono::milliseconds>(now - heartbeat_.last_beat(*silent))
              .count());
    }
    log::flush_thread_buffer();
  }
}

}  // namespace salam::daemon
