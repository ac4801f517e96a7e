// Durations as people write them: `500ms`, `10s`, `2m`, `1h`, `1.5s`.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <salam/time.hpp>

namespace salam::daemon {

// Parses a positive duration with a unit (ms, s, m, h). Nothing on
// failure.
std::optional<Duration> parse_duration(std::string_view text);
// `250ms`, `10s`, `2m`: the largest unit that shows the value exactly.
std::string format_duration(Duration duration);

}  // namespace salam::daemon
