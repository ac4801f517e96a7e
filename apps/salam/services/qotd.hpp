// The quotes of the qotd service, loaded once per configuration.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace salam::daemon {

struct Quotes {
  std::vector<std::string> items;  // each ready to send, lines ending in CR LF
  // Whose turn it is: one rotation per listener, shared by its shards.
  mutable std::atomic<std::size_t> next{0};
};

// Reads quotes from `path` in the fortune format: quotes separated by lines
// holding only "%"; a file without such lines has one quote per non-empty
// line. An empty path gives the built-in quotes. Throws ConfigError naming
// `origin` or FILE:LINE.
std::shared_ptr<const Quotes> load_quotes(const std::string& path, std::string_view origin);

}  // namespace salam::daemon
