#include "duration.hpp"

#include <charconv>
#include <cmath>

namespace salam::daemon {

std::optional<Duration> parse_duration(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() &&
         ((text[digits] >= '0' && text[digits] <= '9') || text[digits] == '.')) {
    ++digits;
  }
  if (digits == 0) return std::nullopt;
  double value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + digits, value);
  if (error != std::errc{} || end != text.data() + digits || !std::isfinite(value))
    return std::nullopt;
  const std::string_view unit = text.substr(digits);
  double nanoseconds_per_unit;
  if (unit == "ms") {
    nanoseconds_per_unit = 1e6;
  } else if (unit == "s") {
    nanoseconds_per_unit = 1e9;
  } else if (unit == "m") {
    nanoseconds_per_unit = 60e9;
  } else if (unit == "h") {
    nanoseconds_per_unit = 3600e9;
  } else {
    return std::nullopt;
  }
  const double nanoseconds = value * nanoseconds_per_unit;
  // At least a millisecond, at most a week: anything else is a typo.
  if (nanoseconds < 1e6 || nanoseconds > 7 * 24 * 3600e9) return std::nullopt;
  return Duration(static_cast<Duration::rep>(nanoseconds));
}

std::string format_duration(Duration duration) {
  using std::chrono::duration_cast;
  const auto ms = duration_cast<std::chrono::milliseconds>(duration).count();
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace salam::daemon
