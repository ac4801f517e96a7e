// The latency histogram: bucket layout, bounded relative error, merging.
#include "histogram.hpp"

#include <cstdint>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace salam::bench {
namespace {

constexpr double kRelativeError = 1.0 / Histogram::kSubBuckets;

TEST(Histogram, EmptyReportsZeros) {
  Histogram histogram;
  EXPECT_EQ(histogram.count(), 0u);
  EXPECT_EQ(histogram.percentile(50), 0u);
  EXPECT_EQ(histogram.percentile(100), 0u);
  EXPECT_EQ(histogram.min(), 0u);
  EXPECT_EQ(histogram.max(), 0u);
  EXPECT_EQ(histogram.mean(), 0.0);
  EXPECT_EQ(histogram.count_at_or_above(0), 0u);
}

TEST(Histogram, BucketsTileTheRangeWithoutGapsOrOverlaps) {
  EXPECT_EQ(Histogram::lowest_in_bucket(0), 0u);
  for (std::size_t bucket = 0; bucket + 1 < Histogram::kBucketCount; ++bucket) {
    ASSERT_EQ(Histogram::highest_in_bucket(bucket) + 1, Histogram::lowest_in_bucket(bucket + 1))
        << "bucket " << bucket;
    ASSERT_EQ(Histogram::bucket_of(Histogram::lowest_in_bucket(bucket)), bucket);
    ASSERT_EQ(Histogram::bucket_of(Histogram::highest_in_bucket(bucket)), bucket);
  }
  EXPECT_EQ(Histogram::highest_in_bucket(Histogram::kBucketCount - 1),
            Histogram::kHighestTrackable);
}

TEST(Histogram, EveryBucketIsNarrowRelativeToItsValues) {
  for (std::size_t bucket = 0; bucket < Histogram::kBucketCount; ++bucket) {
    const auto low = Histogram::lowest_in_bucket(bucket);
    const auto high = Histogram::highest_in_bucket(bucket);
    const auto width = high - low + 1;
    if (low < 2 * Histogram::kSubBuckets) {
      ASSERT_EQ(width, 1u) << "small values are exact";
    } else {
      ASSERT_LE(static_cast<double>(width) / static_cast<double>(low), kRelativeError)
          << "bucket " << bucket;
    }
  }
}

TEST(Histogram, SmallValuesAreExact) {
  Histogram histogram;
  for (std::uint64_t value = 0; value < 256; ++value)
    histogram.record(value);
  EXPECT_EQ(histogram.percentile(50), 127u);
  EXPECT_EQ(histogram.percentile(100), 255u);
  EXPECT_EQ(histogram.min(), 0u);
  EXPECT_DOUBLE_EQ(histogram.mean(), 127.5);
}

TEST(Histogram, AnyValueIsReportedWithinTheRelativeError) {
  std::mt19937_64 random(42);
  for (int i = 0; i < 20000; ++i) {
    // Values spread over every magnitude, 1 µs to hours.
    const unsigned bits = static_cast<unsigned>(random() % 34) + 1;
    const std::uint64_t value = random() % (std::uint64_t{1} << bits);
    Histogram histogram;
    histogram.record(value);
    histogram.record(Histogram::kHighestTrackable);  // so max() does not clamp the answer
    const auto reported = histogram.percentile(50);
    ASSERT_GE(reported, value);
    ASSERT_LE(static_cast<double>(reported - value), static_cast<double>(value) * kRelativeError)
        << "value " << value;
  }
}

TEST(Histogram, PercentilesOfAUniformDistribution) {
  Histogram histogram;
  for (std::uint64_t value = 1; value <= 100000; ++value)
    histogram.record(value);
  const auto near = [](std::uint64_t reported, double expected) {
    return std::abs(static_cast<double>(reported) - expected) <= expected * kRelativeError;
  };
  EXPECT_PRED2(near, histogram.percentile(50), 50000);
  EXPECT_PRED2(near, histogram.percentile(90), 90000);
  EXPECT_PRED2(near, histogram.percentile(99), 99000);
  EXPECT_PRED2(near, histogram.percentile(99.9), 99900);
  EXPECT_EQ(histogram.percentile(100), 100000u);
  EXPECT_EQ(histogram.max(), 100000u);
  EXPECT_EQ(histogram.min(), 1u);
  EXPECT_DOUBLE_EQ(histogram.mean(), 50000.5);
}

TEST(Histogram, TellsApartValuesThatPowersOfTwoWouldMerge) {
  // 1100 µs and 1900 µs share the power-of-two bucket [1024, 2048).
  Histogram histogram;
  histogram.record(1100, 50);
  histogram.record(1900, 50);
  EXPECT_LT(histogram.percentile(50), 1110u);
  EXPECT_GE(histogram.percentile(51), 1900u);
}

TEST(Histogram, PercentileIsNeverAboveTheMaximum) {
  Histogram histogram;
  histogram.record(1000001);  // inside a bucket whose highest value is larger
  EXPECT_EQ(histogram.percentile(50), 1000001u);
  EXPECT_EQ(histogram.percentile(99.9), 1000001u);
}

TEST(Histogram, HugeValuesAreClampedButMaxStaysExact) {
  Histogram histogram;
  histogram.record(Histogram::kHighestTrackable * 4);
  EXPECT_EQ(histogram.count(), 1u);
  EXPECT_EQ(histogram.max(), Histogram::kHighestTrackable * 4);
  EXPECT_EQ(histogram.count_in_bucket(Histogram::kBucketCount - 1), 1u);
}

TEST(Histogram, RecordWithACountIsRepeatedRecording) {
  Histogram once;
  Histogram repeated;
  once.record(777, 5);
  for (int i = 0; i < 5; ++i)
    repeated.record(777);
  EXPECT_EQ(once.count(), repeated.count());
  EXPECT_EQ(once.percentile(50), repeated.percentile(50));
  EXPECT_EQ(once.mean(), repeated.mean());
  once.record(1, 0);
  EXPECT_EQ(once.count(), 5u);
  EXPECT_EQ(once.min(), 777u) << "a zero count records nothing";
}

TEST(Histogram, MergeEqualsRecordingEverythingInOne) {
  std::mt19937_64 random(7);
  Histogram all;
  std::vector<Histogram> parts(4);
  for (int i = 0; i < 10000; ++i) {
    const std::uint64_t value = random() % 5'000'000;
    all.record(value);
    parts[static_cast<std::size_t>(i) % parts.size()].record(value);
  }
  Histogram merged;
  for (const auto& part : parts)
    merged.merge(part);
  EXPECT_EQ(merged.count(), all.count());
  EXPECT_EQ(merged.min(), all.min());
  EXPECT_EQ(merged.max(), all.max());
  EXPECT_DOUBLE_EQ(merged.mean(), all.mean());
  for (double percent : {1.0, 50.0, 90.0, 99.0, 99.9, 100.0})
    EXPECT_EQ(merged.percentile(percent), all.percentile(percent)) << percent;
  for (std::size_t bucket = 0; bucket < Histogram::kBucketCount; ++bucket)
    ASSERT_EQ(merged.count_in_bucket(bucket), all.count_in_bucket(bucket));
}

TEST(Histogram, MergingAnEmptyHistogramChangesNothing) {
  Histogram histogram;
  histogram.record(10);
  histogram.merge(Histogram{});
  EXPECT_EQ(histogram.min(), 10u);
  EXPECT_EQ(histogram.count(), 1u);
}

TEST(Histogram, CountsValuesAtOrAboveOneSecond) {
  Histogram histogram;
  histogram.record(900'000, 3);
  histogram.record(1'000'000, 2);
  histogram.record(3'000'000, 1);
  EXPECT_EQ(histogram.count_at_or_above(1'000'000), 3u);
  EXPECT_EQ(histogram.count_at_or_above(0), 6u);
}

TEST(Histogram, ResetEmptiesIt) {
  Histogram histogram;
  histogram.record(5);
  histogram.reset();
  EXPECT_EQ(histogram.count(), 0u);
  EXPECT_EQ(histogram.max(), 0u);
  EXPECT_EQ(histogram.count_in_bucket(5), 0u);
}

}  // namespace
}  // namespace salam::bench
