// Time as the event loops see it: a monotonic clock and deadlines.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>

namespace salam {

using Clock = std::chrono::steady_clock;
using Duration = std::chrono::nanoseconds;
using TimePoint = Clock::time_point;

// A point in time after which an operation gives up with timed_out().
// Deadline::never() waits for ever; a Deadline converts from a duration
// measured from now.
class Deadline {
 public:
  constexpr Deadline() noexcept = default;
  constexpr explicit Deadline(TimePoint at) noexcept : at_(at) {}
  template <typename Rep, typename Period>
  Deadline(std::chrono::duration<Rep, Period> from_now)  // NOLINT: implicit on purpose
      : at_(from_now >= from_now.max() ? TimePoint::max()
                                       : Clock::now() + std::chrono::ceil<Duration>(from_now)) {}

  static constexpr Deadline never() noexcept { return Deadline{}; }
  constexpr bool is_never() const noexcept { return at_ == TimePoint::max(); }
  constexpr TimePoint at() const noexcept { return at_; }

  friend constexpr bool operator==(Deadline, Deadline) = default;

 private:
  TimePoint at_ = TimePoint::max();
};

}  // namespace salam
