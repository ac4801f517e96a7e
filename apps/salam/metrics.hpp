// Metrics: what the daemon counts of its connections, for the admin
// endpoint (/metrics, /status.json) and the summary at exit.
//
// Counting is per listener and per shard: each shard writes only its own
// ShardCounters (its own cache lines), with a relaxed load and store — no
// locked instruction, no lock, nothing shared on the connection path. A
// reader on any thread sums the shards; a sum read while connections run is
// a moment's view, each counter exact in itself.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "close_reason.hpp"

namespace salam::daemon {

// A counter with one writer thread and any number of readers.
class Counter {
 public:
  void add(std::uint64_t n = 1) noexcept {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_ = 0;
};

// Upper bounds of the connection-duration histogram's buckets, in seconds
// (the last bucket, +Inf, is implied): from a loopback greeting to a
// connection held for an hour.
inline constexpr std::array<double, 12> kDurationBuckets{0.0005, 0.001, 0.005, 0.01, 0.05, 0.1,
                                                         0.5,    1,     5,     30,   300,  3600};

// One shard's counts for one listener.
struct alignas(64) ShardCounters {
  Counter accepted;                            // connections that began their session
  std::array<Counter, kCloseReasons> closed;   // every end, by reason
  std::array<Counter, kCloseReasons> refused;  // ends before the service (a subset of closed)
  Counter bytes_received;                      // counted when a connection ends
  Counter bytes_sent;
  std::array<Counter, kDurationBuckets.size() + 1> duration;  // per bucket, not cumulative
  Counter duration_microseconds;
  Counter tls_full;  // TLS handshakes completed, full and resumed
  Counter tls_resumed;

  // Counts one connection's end.
  void count_end(CloseReason reason, bool was_refused, std::uint64_t in, std::uint64_t out,
                 double seconds) noexcept;
};

// A listener's counts, summed over its shards.
struct ListenerTotals {
  std::uint64_t accepted = 0;
  std::uint64_t active = 0;  // accepted and not yet ended
  std::array<std::uint64_t, kCloseReasons> closed{};
  std::array<std::uint64_t, kCloseReasons> refused{};
  std::uint64_t bytes_received = 0;
  std::uint64_t bytes_sent = 0;
  std::array<std::uint64_t, kDurationBuckets.size() + 1> duration{};  // per bucket
  double duration_seconds = 0;
  std::uint64_t tls_full = 0;
  std::uint64_t tls_resumed = 0;
  std::vector<std::uint64_t> accepted_per_shard;
};

class ListenerMetrics {
 public:
  explicit ListenerMetrics(unsigned shards);
  ShardCounters& shard(unsigned index) noexcept { return shards_[index]; }
  ListenerTotals totals() const;

  // The most connections seen open at once, as sampled (see
  // DaemonStatus::sample): written by the sampler only.
  std::uint64_t peak() const noexcept { return peak_.load(std::memory_order_relaxed); }
  void raise_peak(std::uint64_t active) noexcept {
    if (active > peak()) peak_.store(active, std::memory_order_relaxed);
  }

 private:
  unsigned count_;
  std::unique_ptr<ShardCounters[]> shards_;
  std::atomic<std::uint64_t> peak_ = 0;
};

// Whether a connection may end refused with `reason` (the label values of
// salam_connections_refused_total).
constexpr bool may_refuse(CloseReason reason) noexcept {
  return is_refusal(reason) || reason == CloseReason::tls_error;
}

}  // namespace salam::daemon
