// Histogram: a latency histogram with log-linear buckets, after the design
// of HdrHistogram.
//
// Values (microseconds, in salam-bench) below 2 * kSubBuckets are counted
// exactly. Above that, each power-of-two range [2^k, 2^(k+1)) is cut into
// kSubBuckets equal buckets, so a bucket is never wider than 1/kSubBuckets
// of the values it holds: any percentile is reported within 2^-7 (0.8 %)
// of the true value, from 1 µs to 19 hours, in a fixed 30 KiB of counters.
// Powers-of-two buckets would be off by up to 100 %, which hides exactly
// the differences a benchmark is after.
//
// Recording is one bit_width, a shift and an increment: no allocation, no
// branch on the value's size beyond the clamp, so a load generator can
// record every operation. Each thread keeps its own histogram; merge()
// adds them up at the end.
//
// Threading: none; one histogram per thread, merged after the threads end.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace salam::bench {

class Histogram {
 public:
  // Buckets per power of two: 2^7 bounds the relative error at 1/128.
  static constexpr unsigned kSubBucketBits = 7;
  static constexpr std::uint64_t kSubBuckets = std::uint64_t{1} << kSubBucketBits;
  // Values above this are counted in the last bucket (max() stays exact).
  static constexpr unsigned kValueBits = 36;
  static constexpr std::uint64_t kHighestTrackable = (std::uint64_t{1} << kValueBits) - 1;
  static constexpr std::size_t kBucketCount = (kValueBits - kSubBucketBits + 1) * kSubBuckets;

  void record(std::uint64_t value, std::uint64_t count = 1) noexcept;
  void merge(const Histogram& other) noexcept;
  void reset() noexcept;

  std::uint64_t count() const noexcept { return count_; }
  // 0 for an empty histogram.
  std::uint64_t min() const noexcept { return count_ == 0 ? 0 : min_; }
  std::uint64_t max() const noexcept { return max_; }
  double mean() const noexcept;

  // The value below or at which `percent` % of the recorded values lie: the
  // highest value of the bucket holding that rank (as HdrHistogram reports
  // it), never above max(). 0 for an empty histogram; 100 gives max().
  std::uint64_t percentile(double percent) const noexcept;
  // How many values were recorded in buckets at or above the one holding
  // `value` (so values up to 0.8 % below it may be included).
  std::uint64_t count_at_or_above(std::uint64_t value) const noexcept;

  // The bucket layout, for tests and for exporting the distribution.
  static std::size_t bucket_of(std::uint64_t value) noexcept;
  static std::uint64_t lowest_in_bucket(std::size_t bucket) noexcept;
  static std::uint64_t highest_in_bucket(std::size_t bucket) noexcept;
  std::uint64_t count_in_bucket(std::size_t bucket) const noexcept { return counts_[bucket]; }

 private:
  std::array<std::uint64_t, kBucketCount> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t min_ = UINT64_MAX;
  std::uint64_t max_ = 0;
  // Exact sum for the mean; 2^64 µs is half a million years of latency.
  std::uint64_t sum_ = 0;
};

}  // namespace salam::bench
