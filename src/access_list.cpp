#include <algorithm>
#include <array>
#include <cstring>
#include <iterator>
#include <map>
#include <stdexcept>

#include <arpa/inet.h>

#include <salam/access_list.hpp>
#include <salam/printable.hpp>

namespace salam {

namespace {

using Number = unsigned __int128;

constexpr Number kAllOnes = ~Number{0};
// ::ffff:0:0/96, where IPv4 addresses live in the 128-bit numbering.
constexpr Number kMappedBase = Number{0xffff} << 32;

Number number_from_bytes(const unsigned char* bytes, std::size_t count) noexcept {
  Number value = 0;
  for (std::size_t i = 0; i < count; ++i)
    value = (value << 8) | bytes[i];
  return value;
}

void number_to_bytes(Number value, unsigned char* bytes, std::size_t count) noexcept {
  for (std::size_t i = count; i-- > 0;) {
    bytes[i] = static_cast<unsigned char>(value & 0xff);
    value >>= 8;
  }
}

// The numbers a prefix leaves free: its host bits.
Number host_mask(int host_bits) noexcept {
  return host_bits >= 128 ? kAllOnes : (Number{1} << host_bits) - 1;
}

// A decimal prefix length: digits only, no sign, no leading zero (so that
// `/08` is not silently read as 8 by us and as octal by someone else).
std::optional<int> parse_length(std::string_view text, int max, std::string_view* why) {
  const bool digits_only =
      !text.empty() && text.size() <= 3 &&
      std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits_only || (text.size() > 1 && text.front() == '0')) {
    if (why) *why = "prefix length must be a decimal number without sign or leading zeros";
    return std::nullopt;
  }
  int value = 0;
  for (char c : text)
    value = value * 10 + (c - '0');
  if (value > max) {
    if (why)
      *why = max == 32 ? "prefix length out of range for IPv4 (0-32)"
                       : "prefix length out of range for IPv6 (0-128)";
    return std::nullopt;
  }
  return value;
}

// Says why text that inet_pton refused is not an address, for the usual
// mistakes: brackets, ports, zones, stray characters.
std::string_view diagnose_address(std::string_view text) {
  if (text.empty()) return "missing address";
  if (text.front() == '[') return "no brackets around an IPv6 address in a prefix";
  if (text.find('%') != std::string_view::npos) return "a zone (%...) is not allowed in a prefix";
  const auto colon = text.find(':');
  if (colon != std::string_view::npos && text.find(':', colon + 1) == std::string_view::npos &&
      text.find('.') < colon) {
    return "no port is allowed in a prefix";
  }
  return "not an IPv4 or IPv6 address";
}

// Digits, hex digits and separators; not locale-dependent like isxdigit.
bool is_address_char(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '.' ||
         c == ':';
}

struct ParsedAddress {
  Number number = 0;
  bool v4 = false;
};

std::optional<ParsedAddress> parse_address(std::string_view text, std::string_view* why) {
  // inet_pton wants a terminated string, and would stop at an embedded NUL:
  // refuse anything that cannot be part of an address before copying.
  const bool plausible = !text.empty() && text.size() < INET6_ADDRSTRLEN &&
                         std::all_of(text.begin(), text.end(), is_address_char);
  if (plausible) {
    std::array<char, INET6_ADDRSTRLEN> terminated{};
    std::memcpy(terminated.data(), text.data(), text.size());
    unsigned char bytes[16];
    if (::inet_pton(AF_INET, terminated.data(), bytes) == 1) {
      return ParsedAddress{kMappedBase | number_from_bytes(bytes, 4), true};
    }
    if (::inet_pton(AF_INET6, terminated.data(), bytes) == 1) {
      return ParsedAddress{number_from_bytes(bytes, 16), false};
    }
  }
  if (why) *why = diagnose_address(text);
  return std::nullopt;
}

constexpr std::string_view kHostBitsSet = "host bits are set below the prefix length";

struct PrefixParts {
  Number first = 0;
  int length = 0;
  bool v4 = false;
};

// Parses ADDRESS[/LENGTH] without looking at the host bits.
std::optional<PrefixParts> parse_parts(std::string_view text, std::string_view* why) {
  const auto slash = text.find('/');
  auto address = parse_address(text.substr(0, slash), why);
  if (!address) return std::nullopt;
  const int family_bits = address->v4 ? 32 : 128;
  int length = family_bits;
  if (slash != std::string_view::npos) {
    auto parsed = parse_length(text.substr(slash + 1), family_bits, why);
    if (!parsed) return std::nullopt;
    length = *parsed;
  }
  return PrefixParts{address->number, length, address->v4};
}

Number host_bits_of(const PrefixParts& parts) noexcept {
  return host_mask((parts.v4 ? 32 : 128) - parts.length);
}

std::string format_prefix(const PrefixParts& parts) {
  char text[INET6_ADDRSTRLEN] = {};
  unsigned char bytes[16];
  if (parts.v4) {
    number_to_bytes(parts.first, bytes, 4);
    ::inet_ntop(AF_INET, bytes, text, sizeof text);
  } else {
    number_to_bytes(parts.first, bytes, 16);
    ::inet_ntop(AF_INET6, bytes, text, sizeof text);
  }
  return std::string(text) + "/" + std::to_string(parts.length);
}

}  // namespace

unsigned __int128 address_number(const SocketAddress& address) noexcept {
  // The scope of a link-local IPv6 address is ignored: a rule names
  // addresses, not interfaces.
  if (address.is_v4()) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(address.data());
    return kMappedBase | ntohl(v4->sin_addr.s_addr);
  }
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(address.data());
  return number_from_bytes(v6->sin6_addr.s6_addr, 16);
}

std::optional<IpPrefix> IpPrefix::try_parse(std::string_view text, std::string_view* why) noexcept {
  auto parts = parse_parts(text, why);
  if (!parts) return std::nullopt;
  if ((parts->first & host_bits_of(*parts)) != 0) {
    if (why) *why = kHostBitsSet;
    return std::nullopt;
  }
  IpPrefix prefix;
  prefix.first_ = parts->first;
  prefix.length_ = parts->length;
  prefix.v4_ = parts->v4;
  return prefix;
}

IpPrefix IpPrefix::parse(std::string_view text) {
  std::string_view why;
  auto prefix = try_parse(text, &why);
  if (prefix) return *prefix;
  std::string message = "bad prefix '" + printable(text) + "': " + std::string(why);
  if (why == kHostBitsSet) {
    auto parts = parse_parts(text, nullptr);
    parts->first &= ~host_bits_of(*parts);
    message += " (did you mean " + format_prefix(*parts) + "?)";
  }
  throw std::invalid_argument(message);
}

unsigned __int128 IpPrefix::last() const noexcept {
  return first_ | host_mask((v4_ ? 32 : 128) - length_);
}

bool IpPrefix::contains(const SocketAddress& address) const noexcept {
  const Number number = address_number(address);
  return number >= first_ && number <= last();
}

std::string IpPrefix::to_string() const {
  return format_prefix({first_, length_, v4_});
}

// Compiling rules.
//
// Rules are taken in order. `covered` holds the addresses some earlier rule
// already decides, as disjoint intervals (merged when they touch, whatever
// their actions); only the gaps of a new rule's range inside it become
// ranges with the new rule's action. Every interval a rule walks over is
// merged into one, so each is walked once: n rules cost O(n log n) however
// they nest, and yield at most 2n + 1 ranges.
namespace {

struct Range {
  Number first;
  Number last;
  Access action;
};

class RuleCompiler {
 public:
  void add(Number first, Number last, Access action);
  std::vector<Range> take_sorted_ranges();

 private:
  std::map<Number, Number> covered_;  // first -> last
  std::vector<Range> ranges_;
};

void RuleCompiler::add(Number first, Number last, Access action) {
  Number merged_first = first;
  Number merged_last = last;
  Number next_free = first;  // the first address of [first, last] not yet looked at
  auto it = covered_.upper_bound(first);
  if (it != covered_.begin()) {
    auto before = std::prev(it);
    if (before->second >= last) return;  // an earlier rule decides all of it
    if (before->second >= first || before->second + 1 == first) {
      merged_first = before->first;
      if (before->second >= first) next_free = before->second + 1;
      covered_.erase(before);
    }
  }
  bool done = false;
  while (it != covered_.end() && it->first <= last) {
    if (it->first > next_free) ranges_.push_back({next_free, it->first - 1, action});
    if (it->second >= last) {
      merged_last = it->second;
      done = true;
    } else {
      next_free = it->second + 1;
    }
    it = covered_.erase(it);
    if (done) break;
  }
  if (!done) ranges_.push_back({next_free, last, action});
  if (merged_last != kAllOnes && it != covered_.end() && it->first == merged_last + 1) {
    merged_last = it->second;
    covered_.erase(it);
  }
  covered_.emplace(merged_first, merged_last);
}

// The ranges by address, neighbours with one action joined.
std::vector<Range> RuleCompiler::take_sorted_ranges() {
  std::sort(ranges_.begin(), ranges_.end(),
            [](const Range& a, const Range& b) { return a.first < b.first; });
  std::vector<Range> joined;
  joined.reserve(ranges_.size());
  for (const Range& range : ranges_) {
    if (!joined.empty() && joined.back().action == range.action &&
        joined.back().last + 1 == range.first) {
      joined.back().last = range.last;
    } else {
      joined.push_back(range);
    }
  }
  ranges_.clear();
  covered_.clear();
  return joined;
}

}  // namespace

AccessList::AccessList(const std::vector<AccessRule>& rules, Access default_action)
    : default_action_(default_action), rule_count_(rules.size()) {
  RuleCompiler compiler;
  for (const AccessRule& rule : rules) {
    compiler.add(rule.prefix.first(), rule.prefix.last(), rule.action);
  }
  const std::vector<Range> ranges = compiler.take_sorted_ranges();
  starts_.reserve(ranges.size());
  ends_.reserve(ranges.size());
  actions_.reserve(ranges.size());
  for (const Range& range : ranges) {
    starts_.push_back(range.first);
    ends_.push_back(range.last);
    actions_.push_back(range.action);
  }
}

Access AccessList::check(const SocketAddress& address) const noexcept {
  const Number number = address_number(address);
  // The last range starting at or before the address is the only one that
  // can hold it.
  auto after = std::upper_bound(starts_.begin(), starts_.end(), number);
  if (after == starts_.begin()) return default_action_;
  const auto index = static_cast<std::size_t>(std::distance(starts_.begin(), after)) - 1;
  return number <= ends_[index] ? actions_[index] : default_action_;
}

// Parsing rules.
namespace {

bool is_blank(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\r';
}

// Splits a line (comment already removed) into words.
std::vector<std::string_view> split_words(std::string_view line) {
  std::vector<std::string_view> words;
  std::size_t at = 0;
  while (at < line.size()) {
    while (at < line.size() && is_blank(line[at]))
      ++at;
    std::size_t end = at;
    while (end < line.size() && !is_blank(line[end]))
      ++end;
    if (end > at) words.push_back(line.substr(at, end - at));
    at = end;
  }
  return words;
}

[[noreturn]] void fail(std::string_view origin, std::size_t line, const std::string& what) {
  throw std::invalid_argument(std::string(origin) + ":" + std::to_string(line) + ": " + what);
}

AccessRule parse_rule(const std::vector<std::string_view>& words, std::string_view origin,
                      std::size_t line) {
  const std::string_view verb = words[0];
  if (verb != "allow" && verb != "deny") {
    fail(origin, line, "unknown action '" + printable(verb) + "' (expected allow or deny)");
  }
  if (words.size() < 2) fail(origin, line, "missing prefix after '" + std::string(verb) + "'");
  if (words.size() > 2) {
    fail(origin, line, "unexpected '" + printable(words[2]) + "' after the prefix");
  }
  try {
    return {verb == "allow" ? Access::allow : Access::deny, IpPrefix::parse(words[1])};
  } catch (const std::invalid_argument& error) {
    fail(origin, line, error.what());
  }
}

}  // namespace

std::vector<AccessRule> AccessList::parse_rules(std::string_view text, std::string_view origin) {
  std::vector<AccessRule> rules;
  for (std::size_t line_number = 1; !text.empty(); ++line_number) {
    const auto newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text = newline == std::string_view::npos ? std::string_view{} : text.substr(newline + 1);
    line = line.substr(0, line.find('#'));
    const auto words = split_words(line);
    if (!words.empty()) rules.push_back(parse_rule(words, origin, line_number));
  }
  return rules;
}

}  // namespace salam
