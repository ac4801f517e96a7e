// RateLimit: at most `rate` events per second with bursts of `burst`,
// shared by every shard without a lock (the generic cell rate algorithm:
// one atomic "theoretical arrival time", moved on by compare-and-swap).
//
// Used for TLS handshakes over all listeners: a flood of them is refused
// before any cryptography, so that it cannot starve the connections that
// are established already.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include <salam/time.hpp>

namespace salam::daemon {

class RateLimit {
 public:
  RateLimit(double rate, double burst) noexcept
      : interval_(static_cast<std::int64_t>(1e9 / rate)),
        tolerance_(static_cast<std::int64_t>(1e9 / rate * (burst > 1 ? burst - 1 : 0))) {}

  double rate() const noexcept { return 1e9 / static_cast<double>(interval_); }

  // True if an event may happen at `now`, and counts it.
  bool take(TimePoint now) noexcept {
    const std::int64_t t =
        std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
    std::int64_t arrival = next_.load(std::memory_order_relaxed);
    for (;;) {
      const std::int64_t start = arrival > t ? arrival : t;
      if (start - t > tolerance_) return false;
      if (next_.compare_exchange_weak(arrival, start + interval_, std::memory_order_relaxed)) {
        return true;
      }
    }
  }

 private:
  const std::int64_t interval_;
  const std::int64_t tolerance_;
  std::atomic<std::int64_t> next_{0};
};

}  // namespace salam::daemon
