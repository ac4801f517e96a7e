// qotd (RFC 865): one quote per connection, then close. The RFC asks for
// at most 512 characters; longer quotes are refused when the file loads.
// The quotes of a listener take turns.
#include "qotd.hpp"

#include <algorithm>
#include <sstream>

#include <fmt/format.h>

#include "../input_file.hpp"
#include "service.hpp"

namespace salam::daemon {

namespace {

constexpr std::size_t kMaxQuote = 512;

// Proverbs, free of rights; the first is Malay, like the tutorial salam
// grew out of.
constexpr std::string_view kBuiltIn[] = {
    "Sedikit-sedikit, lama-lama jadi bukit.\n(Little by little, it becomes a hill.)",
    "A journey of a thousand miles begins with a single step.",
    "Many hands make light work.",
    "Still waters run deep.",
    "Where there is a will, there is a way.",
};

std::string with_crlf(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\n') out.push_back('\r');
    out.push_back(c);
  }
  return out + "\r\n";
}

void add_quote(Quotes& quotes, std::string text, const std::string& path, int first_line) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
    text.pop_back();
  if (text.empty()) return;
  std::string ready = with_crlf(text);
  if (ready.size() > kMaxQuote) {
    throw ConfigError(
        fmt::format("{}:{}", path, first_line),
        fmt::format("quote of {} bytes; RFC 865 allows at most {}", ready.size(), kMaxQuote));
  }
  quotes.items.push_back(std::move(ready));
}

}  // namespace

std::shared_ptr<const Quotes> load_quotes(const std::string& path, std::string_view origin) {
  auto quotes = std::make_shared<Quotes>();
  if (path.empty()) {
    for (auto quote : kBuiltIn)
      quotes->items.push_back(with_crlf(quote));
    return quotes;
  }
  std::istringstream file(read_input_file_or_throw(path, kMaxQuotesFile, "quotes file", origin));
  std::vector<std::string> lines;
  for (std::string line; std::getline(file, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();  // files written with CR LF
    lines.push_back(line);
  }

  const bool fortune = std::find(lines.begin(), lines.end(), "%") != lines.end();
  std::string current;
  int first_line = 1;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const int number = static_cast<int>(i) + 1;
    if (!fortune) {
      add_quote(*quotes, lines[i], path, number);
      continue;
    }
    if (lines[i] == "%") {
      add_quote(*quotes, std::move(current), path, first_line);
      current.clear();
      first_line = number + 1;
    } else {
      current += lines[i] + "\n";
    }
  }
  if (fortune) add_quote(*quotes, std::move(current), path, first_line);
  if (quotes->items.empty()) throw ConfigError(origin, fmt::format("no quotes in '{}'", path));
  return quotes;
}

Task<Ending> serve_qotd(Connection& client, const ServiceOptions& options,
                        const SessionFacts& /*facts*/) {
  const Quotes& quotes = *options.quotes;
  const std::size_t turn = quotes.next.fetch_add(1, std::memory_order_relaxed);
  const std::string& quote = quotes.items[turn % quotes.items.size()];
  co_return co_await send_reply(client, quote, options.write_timeout);
}

}  // namespace salam::daemon
