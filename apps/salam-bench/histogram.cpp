#include "histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace salam::bench {

// Layout: bucket = shift * kSubBuckets + (value >> shift), where shift is
// how far the value must move right to fit in kSubBucketBits + 1 bits.
// Values below 2 * kSubBuckets have shift 0 and a bucket of their own;
// above, (value >> shift) lies in [kSubBuckets, 2 * kSubBuckets), so each
// power of two gets kSubBuckets consecutive buckets of width 2^shift.
std::size_t Histogram::bucket_of(std::uint64_t value) noexcept {
  value = std::min(value, kHighestTrackable);
  const int width = std::bit_width(value);
  const int shift = std::max(0, width - static_cast<int>(kSubBucketBits + 1));
  return static_cast<std::size_t>(shift) * kSubBuckets + static_cast<std::size_t>(value >> shift);
}

std::uint64_t Histogram::lowest_in_bucket(std::size_t bucket) noexcept {
  if (bucket < 2 * kSubBuckets) return bucket;
  const std::uint64_t shift = bucket / kSubBuckets - 1;
  const std::uint64_t sub = bucket - shift * kSubBuckets;
  return sub << shift;
}

std::uint64_t Histogram::highest_in_bucket(std::size_t bucket) noexcept {
  if (bucket < 2 * kSubBuckets) return bucket;
  const std::uint64_t shift = bucket / kSubBuckets - 1;
  return lowest_in_bucket(bucket) + (std::uint64_t{1} << shift) - 1;
}

void Histogram::record(std::uint64_t value, std::uint64_t count) noexcept {
  if (count == 0) return;
  counts_[bucket_of(value)] += count;
  count_ += count;
  sum_ += value * count;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
}

void Histogram::merge(const Histogram& other) noexcept {
  for (std::size_t i = 0; i < kBucketCount; ++i)
    counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

void Histogram::reset() noexcept {
  *this = Histogram{};
}

double Histogram::mean() const noexcept {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(count_);
}

std::uint64_t Histogram::percentile(double percent) const noexcept {
  if (count_ == 0) return 0;
  if (percent >= 100.0) return max_;
  percent = std::max(percent, 0.0);
  // The rank of the value asked for, counting from 1: the smallest value
  // with at least `percent` % of all values at or below it.
  auto rank = static_cast<std::uint64_t>(std::ceil(percent / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBucketCount; ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(highest_in_bucket(i), max_);
  }
  return max_;
}

std::uint64_t Histogram::count_at_or_above(std::uint64_t value) const noexcept {
  std::uint64_t total = 0;
  for (std::size_t i = bucket_of(value); i < kBucketCount; ++i)
    total += counts_[i];
  return total;
}

}  // namespace salam::bench
