// Watchdog: systemd's service watchdog (WatchdogSec=, seen as
// WATCHDOG_USEC). A thread of its own sends WATCHDOG=1 every half
// interval, but only if every shard's heartbeat moved since the previous
// ping: one wedged shard is enough for systemd to see a hung service and
// restart it, although the process and its other shards still run.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

#include <salam/time.hpp>

#include "heartbeat.hpp"

namespace salam::daemon {

class Watchdog {
 public:
  // The interval systemd asks for, or zero when it asks for none.
  static Duration interval_from_environment() noexcept;
  // The heartbeat period that lets every shard beat between two pings.
  static Duration heartbeat_period(Duration interval) noexcept;

  // `heartbeat` must outlive this object.
  Watchdog(const Heartbeat& heartbeat, Duration interval);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Starts pinging (once the service is ready). Throws std::system_error
  // if the thread cannot start.
  void start();

 private:
  void run() noexcept;

  const Heartbeat& heartbeat_;
  const Duration interval_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace salam::daemon
