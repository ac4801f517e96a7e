// Backslash escapes in messages given as text: `\r\n`, `\t`, `\\`, `\0`,
// `\xHH`.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace salam::daemon {

// Nothing if an escape is malformed; `why` then says which.
std::optional<std::string> unescape(std::string_view text, std::string* why = nullptr);

}  // namespace salam::daemon
