// Access rules from arbitrary text. Parsing must either throw
// std::invalid_argument or give rules; the compiled list must then answer
// exactly as trying the rules one by one would, at the edges of every rule
// and at addresses taken from the input's bytes. Every parsed prefix must
// also survive a round trip through its text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <vector>

#include <salam/access_list.hpp>

namespace {

using Number = unsigned __int128;

salam::SocketAddress v6_address(Number number) {
  sockaddr_in6 raw{};
  raw.sin6_family = AF_INET6;
  for (int i = 15; i >= 0; --i, number >>= 8) {
    raw.sin6_addr.s6_addr[i] = static_cast<std::uint8_t>(number);
  }
  return *salam::SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&raw), sizeof raw);
}

salam::SocketAddress v4_address(std::uint32_t number) {
  sockaddr_in raw{};
  raw.sin_family = AF_INET;
  raw.sin_addr.s_addr = htonl(number);
  return *salam::SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&raw), sizeof raw);
}

salam::Access check_linearly(const std::vector<salam::AccessRule>& rules,
                             salam::Access default_action, const salam::SocketAddress& address) {
  for (const auto& rule : rules) {
    if (rule.prefix.contains(address)) return rule.action;
  }
  return default_action;
}

// Addresses worth asking about: each rule's edges and their neighbours
// (as IPv6 numbers, so IPv4 rules are also asked about as mapped
// addresses), the IPv4 form of IPv4 edges, and windows of the input.
std::vector<salam::SocketAddress> probes(const std::vector<salam::AccessRule>& rules,
                                         const std::uint8_t* data, std::size_t size) {
  std::vector<salam::SocketAddress> addresses;
  for (std::size_t i = 0; i < rules.size() && i < 64; ++i) {
    const Number first = rules[i].prefix.first();
    const Number last = rules[i].prefix.last();
    for (Number edge : {first - 1, first, last, last + 1}) {
      addresses.push_back(v6_address(edge));
      if ((edge >> 32) == 0xffff) addresses.push_back(v4_address(static_cast<std::uint32_t>(edge)));
    }
  }
  for (std::size_t at = 0; at + 16 <= size && addresses.size() < 400; at += 7) {
    Number number = 0;
    std::memcpy(&number, data + at, sizeof number);
    addresses.push_back(v6_address(number));
    addresses.push_back(v4_address(static_cast<std::uint32_t>(number)));
  }
  return addresses;
}

void check_round_trip(const salam::IpPrefix& prefix) {
  const auto again = salam::IpPrefix::try_parse(prefix.to_string());
  if (!again || again->first() != prefix.first() || again->last() != prefix.last() ||
      again->length() != prefix.length() || again->is_v4() != prefix.is_v4()) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<salam::AccessRule> rules;
  try {
    rules = salam::AccessList::parse_rules(text, "fuzz");
  } catch (const std::invalid_argument&) {
    return 0;
  }
  for (const auto& rule : rules)
    check_round_trip(rule.prefix);
  const auto default_action = size % 2 == 0 ? salam::Access::allow : salam::Access::deny;
  const salam::AccessList list(rules, default_action);
  if (list.rule_count() != rules.size()) std::abort();
  for (const auto& address : probes(rules, data, size)) {
    if (list.check(address) != check_linearly(rules, default_action, address)) std::abort();
  }
  return 0;
}
