// Access lists: allow or deny clients by address prefix.
//
// Rules are tried in order and the first that matches decides; if none
// does, the default decides. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d)
// are matched as the IPv4 addresses they are. A lookup costs O(log n) in
// the number of rules, whatever the rules: the list is compiled into
// disjoint address ranges, each with its decision, and searched by
// bisection.
//
// Threading: an AccessList is immutable once built; check() is
// thread-safe. Replace a list by building a new one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <salam/address.hpp>

namespace salam {

// An address prefix: `10.0.0.0/8`, `2001:db8::/32`; a bare address is a
// single host (/32 or /128). Host bits below the prefix must be zero
// (`10.0.0.1/8` is refused as a probable typo). The length is plain
// decimal (no sign, no leading zero) within the family's range; brackets,
// ports and zones (`%eth0`) are refused.
//
// Numbering: one 128-bit space for both families. An IPv6 address is its
// own 128 bits; an IPv4 address a.b.c.d is numbered as ::ffff:a.b.c.d, its
// IPv4-mapped form. So `10.0.0.0/8` and `::ffff:10.0.0.0/104` are the same
// range (each keeps the family it was written in for to_string()), a
// client arriving on a dual-stack socket as ::ffff:10.1.2.3 matches IPv4
// rules, `0.0.0.0/0` is all of IPv4 (and only IPv4), `::/0` is everything.
// The deprecated IPv4-compatible form ::a.b.c.d is plain IPv6.
class IpPrefix {
 public:
  static std::optional<IpPrefix> try_parse(std::string_view text,
                                           std::string_view* why = nullptr) noexcept;
  // Throws std::invalid_argument naming the text and the problem.
  static IpPrefix parse(std::string_view text);

  bool is_v4() const noexcept { return v4_; }
  int length() const noexcept { return length_; }
  bool contains(const SocketAddress& address) const noexcept;
  std::string to_string() const;

  // The prefix as an inclusive range of 128-bit numbers; IPv4 addresses
  // are numbered as their IPv4-mapped IPv6 forms.
  unsigned __int128 first() const noexcept { return first_; }
  unsigned __int128 last() const noexcept;

 private:
  unsigned __int128 first_ = 0;
  int length_ = 0;  // in the address's own family
  bool v4_ = true;
};

// The number an address has in IpPrefix's numbering. The port and an IPv6
// scope (zone) are ignored.
unsigned __int128 address_number(const SocketAddress& address) noexcept;

enum class Access : std::uint8_t { allow, deny };

struct AccessRule {
  Access action;
  IpPrefix prefix;
};

class AccessList {
 public:
  // Allows everyone.
  AccessList() = default;
  AccessList(const std::vector<AccessRule>& rules, Access default_action);

  // Parses rules, one per line: `allow PREFIX` or `deny PREFIX`; `#` starts
  // a comment; blank lines are skipped. Throws std::invalid_argument with
  // "ORIGIN:LINE: what is wrong".
  static std::vector<AccessRule> parse_rules(std::string_view text, std::string_view origin);

  Access check(const SocketAddress& address) const noexcept;
  std::size_t rule_count() const noexcept { return rule_count_; }

 private:
  // Disjoint ranges sorted by start; `starts_` alone is searched.
  std::vector<unsigned __int128> starts_;
  std::vector<unsigned __int128> ends_;
  std::vector<Access> actions_;
  Access default_action_ = Access::allow;
  std::size_t rule_count_ = 0;
};

}  // namespace salam
