// Text from outside the program — a flag, a file, a client — made safe to
// quote in a log line or an error message.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace salam {

// `text` with every byte that is not printable ASCII, and the backslash,
// written as \xNN, and cut after `longest` bytes (then "..." and the
// number of bytes cut): one short line whatever the text holds.
std::string printable(std::string_view text, std::size_t longest = 64);

}  // namespace salam
