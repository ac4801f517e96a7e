#include <algorithm>

#include <fmt/format.h>

#include <salam/printable.hpp>

namespace salam {

std::string printable(std::string_view text, std::size_t longest) {
  std::string out;
  out.reserve(std::min(text.size(), longest) + 2);
  for (char c : text.substr(0, longest)) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f && c != '\\') {
      out += c;
    } else {
      constexpr char kHex[] = "0123456789abcdef";
      out += {'\\', 'x', kHex[byte >> 4], kHex[byte & 0xf]};
    }
  }
  if (text.size() > longest) out += fmt::format("... ({} more bytes)", text.size() - longest);
  return out;
}

}  // namespace salam
