// FaultPlan: which operations of a loop fail on purpose, as the
// SALAM_FAULTS environment variable says (syntax in docs/testing.md).
//
// A plan has at most one rule per kind of operation: the errno it fails
// with, and when. FaultSchedule is a rule with its own count of the
// operations it has seen. Each loop gets its own schedules, so shards
// decide independently: a loop's n-th read fails or not whatever the other
// loops do, and a probability draws from a splitmix64 stream of the seed
// and the kind, so that a seed replays the same failures.
//
// Threading: a plan is a value; a schedule belongs to one loop.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace salam::detail {

enum class FaultKind : std::uint8_t { accept, read, write, timer, buffer };
inline constexpr std::size_t kFaultKinds = 5;

class FaultSchedule {
 public:
  struct When {
    std::uint64_t after = 0;       // the first `after` operations never fail
    std::uint64_t every = 0;       // then every Nth fails (0: see below)
    std::optional<double> chance;  // or each with this probability
  };
  // With neither `every` nor `chance`, every operation past `after` fails.
  FaultSchedule(int error, When when, std::uint64_t seed) noexcept
      : error_(error), when_(when), seed_(seed) {}

  int error() const noexcept { return error_; }

  // Counts one more operation; true if it is to fail.
  bool fails() noexcept {
    const std::uint64_t n = ++count_;
    if (n <= when_.after) return false;
    if (when_.every > 0) return (n - when_.after) % when_.every == 0;
    if (when_.chance) return draw(n) < *when_.chance;
    return true;
  }

 private:
  // The n-th output of splitmix64 seeded with seed_, in [0, 1).
  double draw(std::uint64_t n) const noexcept {
    std::uint64_t z = seed_ + n * 0x9e3779b97f4a7c15u;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    z ^= z >> 31;
    return static_cast<double>(z >> 11) * 0x1.0p-53;
  }

  int error_;
  When when_;
  std::uint64_t seed_;
  std::uint64_t count_ = 0;
};

struct FaultPlan {
  std::array<std::optional<FaultSchedule>, kFaultKinds> rules;

  std::optional<FaultSchedule>& operator[](FaultKind kind) noexcept {
    return rules[static_cast<std::size_t>(kind)];
  }
};

// Parses the text of SALAM_FAULTS. Throws std::invalid_argument, with a
// message that names the variable and the part that is wrong.
FaultPlan parse_fault_plan(std::string_view text);

}  // namespace salam::detail
