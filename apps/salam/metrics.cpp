#include "metrics.hpp"

#include <algorithm>
#include <cmath>

namespace salam::daemon {

void ShardCounters::count_end(CloseReason reason, bool was_refused, std::uint64_t in,
                              std::uint64_t out, double seconds) noexcept {
  const auto index = static_cast<std::size_t>(reason);
  closed[index].add();
  if (was_refused) refused[index].add();
  bytes_received.add(in);
  bytes_sent.add(out);
  const auto bucket = static_cast<std::size_t>(
      std::lower_bound(kDurationBuckets.begin(), kDurationBuckets.end(), seconds) -
      kDurationBuckets.begin());
  duration[bucket].add();
  duration_microseconds.add(static_cast<std::uint64_t>(std::llround(seconds * 1e6)));
}

ListenerMetrics::ListenerMetrics(unsigned shards)
    : count_(shards), shards_(std::make_unique<ShardCounters[]>(shards)) {}

ListenerTotals ListenerMetrics::totals() const {
  ListenerTotals totals;
  std::uint64_t ended = 0;
  for (unsigned s = 0; s < count_; ++s) {
    const ShardCounters& shard = shards_[s];
    // Ends before starts: a connection counted as ended was counted as
    // accepted before, so `active` cannot go below zero.
    std::uint64_t shard_ended = 0;
    for (int r = 0; r < kCloseReasons; ++r) {
      const std::uint64_t closed = shard.closed[r].value();
      totals.closed[r] += closed;
      totals.refused[r] += shard.refused[r].value();
      shard_ended += closed;
    }
    const std::uint64_t accepted = std::max(shard.accepted.value(), shard_ended);
    totals.accepted += accepted;
    totals.accepted_per_shard.push_back(accepted);
    ended += shard_ended;
    totals.bytes_received += shard.bytes_received.value();
    totals.bytes_sent += shard.bytes_sent.value();
    for (std::size_t b = 0; b < totals.duration.size(); ++b)
      totals.duration[b] += shard.duration[b].value();
    totals.duration_seconds += static_cast<double>(shard.duration_microseconds.value()) / 1e6;
    totals.tls_full += shard.tls_full.value();
    totals.tls_resumed += shard.tls_resumed.value();
  }
  totals.active = totals.accepted - ended;
  return totals;
}

}  // namespace salam::daemon
