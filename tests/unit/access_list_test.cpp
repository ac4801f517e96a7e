#include <chrono>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <salam/access_list.hpp>

namespace salam {
namespace {

SocketAddress ip(const char* text) {
  auto address = SocketAddress::from_ip(text, 0);
  if (!address) throw std::invalid_argument(std::string("test address ") + text);
  return *address;
}

AccessList compile(std::string_view rules, Access default_action) {
  return AccessList(AccessList::parse_rules(rules, "test"), default_action);
}

// The reference semantics: try each rule in order.
Access check_linearly(const std::vector<AccessRule>& rules, Access default_action,
                      const SocketAddress& address) {
  for (const AccessRule& rule : rules) {
    if (rule.prefix.contains(address)) return rule.action;
  }
  return default_action;
}

// --- IpPrefix -------------------------------------------------------------

TEST(IpPrefix, ParsesIpv4Prefixes) {
  auto prefix = IpPrefix::parse("10.0.0.0/8");
  EXPECT_TRUE(prefix.is_v4());
  EXPECT_EQ(prefix.length(), 8);
  EXPECT_EQ(prefix.to_string(), "10.0.0.0/8");
  EXPECT_TRUE(prefix.contains(ip("10.0.0.0")));
  EXPECT_TRUE(prefix.contains(ip("10.255.255.255")));
  EXPECT_FALSE(prefix.contains(ip("11.0.0.0")));
  EXPECT_FALSE(prefix.contains(ip("9.255.255.255")));
}

TEST(IpPrefix, BareAddressIsOneHost) {
  auto v4 = IpPrefix::parse("192.168.1.7");
  EXPECT_EQ(v4.length(), 32);
  EXPECT_EQ(v4.first(), v4.last());
  EXPECT_EQ(v4.to_string(), "192.168.1.7/32");
  auto v6 = IpPrefix::parse("::1");
  EXPECT_FALSE(v6.is_v4());
  EXPECT_EQ(v6.length(), 128);
  EXPECT_EQ(v6.first(), v6.last());
  EXPECT_EQ(v6.first(), 1u);
}

TEST(IpPrefix, ParsesIpv6Prefixes) {
  auto prefix = IpPrefix::parse("2001:db8::/32");
  EXPECT_FALSE(prefix.is_v4());
  EXPECT_EQ(prefix.to_string(), "2001:db8::/32");
  EXPECT_TRUE(prefix.contains(ip("2001:db8::")));
  EXPECT_TRUE(prefix.contains(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(prefix.contains(ip("2001:db9::")));
  EXPECT_FALSE(prefix.contains(ip("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_TRUE(IpPrefix::parse("2001:DB8::/32").contains(ip("2001:db8::1")));
}

TEST(IpPrefix, Ipv4IsNumberedAsMappedIpv6) {
  EXPECT_EQ(IpPrefix::parse("0.0.0.0/0").first(), IpPrefix::parse("::ffff:0:0/96").first());
  EXPECT_EQ(IpPrefix::parse("0.0.0.0/0").last(), IpPrefix::parse("::ffff:0:0/96").last());
  EXPECT_EQ(IpPrefix::parse("10.0.0.0/8").first(), IpPrefix::parse("::ffff:10.0.0.0/104").first());
  EXPECT_EQ(IpPrefix::parse("10.0.0.0/8").last(), IpPrefix::parse("::ffff:10.0.0.0/104").last());
  EXPECT_EQ(address_number(ip("1.2.3.4")), address_number(ip("::ffff:1.2.3.4")));
  EXPECT_EQ(address_number(ip("1.2.3.4")),
            (static_cast<unsigned __int128>(0xffff) << 32) | 0x01020304u);
}

TEST(IpPrefix, MappedPrefixKeepsTheFamilyItWasWrittenIn) {
  auto mapped = IpPrefix::parse("::ffff:10.0.0.0/104");
  EXPECT_FALSE(mapped.is_v4());
  EXPECT_EQ(mapped.length(), 104);
  EXPECT_EQ(mapped.to_string(), "::ffff:10.0.0.0/104");
  EXPECT_TRUE(mapped.contains(ip("10.9.8.7")));
  EXPECT_TRUE(mapped.contains(ip("::ffff:10.9.8.7")));
  EXPECT_FALSE(mapped.contains(ip("11.0.0.0")));
}

TEST(IpPrefix, WholeSpaces) {
  auto all = IpPrefix::parse("::/0");
  EXPECT_EQ(all.first(), 0u);
  EXPECT_EQ(all.last(), ~static_cast<unsigned __int128>(0));
  EXPECT_TRUE(all.contains(ip("1.2.3.4")));
  EXPECT_TRUE(all.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
  auto all_v4 = IpPrefix::parse("0.0.0.0/0");
  EXPECT_TRUE(all_v4.contains(ip("0.0.0.0")));
  EXPECT_TRUE(all_v4.contains(ip("255.255.255.255")));
  EXPECT_TRUE(all_v4.contains(ip("::ffff:1.2.3.4")));
  EXPECT_FALSE(all_v4.contains(ip("::1")));
  EXPECT_FALSE(all_v4.contains(ip("2001:db8::1")));
}

TEST(IpPrefix, RoundTripsThroughText) {
  for (const char* text : {"0.0.0.0/0", "10.0.0.0/8", "1.2.3.4/32", "::/0", "2001:db8::/32",
                           "::1/128", "::ffff:10.0.0.0/104", "fe80::/10"}) {
    EXPECT_EQ(IpPrefix::parse(text).to_string(), text);
    EXPECT_EQ(IpPrefix::parse(IpPrefix::parse(text).to_string()).first(),
              IpPrefix::parse(text).first());
  }
}

struct BadPrefix {
  const char* text;
  const char* reason;
};

class IpPrefixRejects : public ::testing::TestWithParam<BadPrefix> {};

TEST_P(IpPrefixRejects, WithAClearReason) {
  const BadPrefix& bad = GetParam();
  std::string_view why;
  EXPECT_FALSE(IpPrefix::try_parse(bad.text, &why)) << bad.text;
  EXPECT_EQ(why, bad.reason) << bad.text;
  try {
    (void)IpPrefix::parse(bad.text);
    FAIL() << "parse accepted " << bad.text;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(bad.reason), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(bad.text), std::string::npos) << e.what();
  }
}

constexpr const char* kBadLength =
    "prefix length must be a decimal number without sign or leading zeros";

INSTANTIATE_TEST_SUITE_P(
    Cases, IpPrefixRejects,
    ::testing::Values(BadPrefix{"", "missing address"}, BadPrefix{"/8", "missing address"},
                      BadPrefix{"10.0.0.1/8", "host bits are set below the prefix length"},
                      BadPrefix{"2001:db8::1/32", "host bits are set below the prefix length"},
                      BadPrefix{"::ffff:10.0.0.1/104", "host bits are set below the prefix length"},
                      BadPrefix{"10.0.0.0/33", "prefix length out of range for IPv4 (0-32)"},
                      BadPrefix{"::/129", "prefix length out of range for IPv6 (0-128)"},
                      BadPrefix{"10.0.0.0/", kBadLength}, BadPrefix{"10.0.0.0/+8", kBadLength},
                      BadPrefix{"10.0.0.0/-8", kBadLength}, BadPrefix{"10.0.0.0/08", kBadLength},
                      BadPrefix{"10.0.0.0/ 8", kBadLength}, BadPrefix{"10.0.0.0/8 ", kBadLength},
                      BadPrefix{"10.0.0.0/8/8", kBadLength}, BadPrefix{"10.0.0.0/0x8", kBadLength},
                      BadPrefix{"::/1000", kBadLength},
                      BadPrefix{"[::1]", "no brackets around an IPv6 address in a prefix"},
                      BadPrefix{"[2001:db8::]/32",
                                "no brackets around an IPv6 address in a prefix"},
                      BadPrefix{"10.0.0.1:80", "no port is allowed in a prefix"},
                      BadPrefix{"fe80::1%1", "a zone (%...) is not allowed in a prefix"},
                      BadPrefix{"10.0.0", "not an IPv4 or IPv6 address"},
                      BadPrefix{"10.0.0.256", "not an IPv4 or IPv6 address"},
                      BadPrefix{"010.0.0.0", "not an IPv4 or IPv6 address"},
                      BadPrefix{" 10.0.0.0", "not an IPv4 or IPv6 address"},
                      BadPrefix{"localhost", "not an IPv4 or IPv6 address"},
                      BadPrefix{"1:2:3:4:5:6:7:8:9", "not an IPv4 or IPv6 address"},
                      BadPrefix{":::", "not an IPv4 or IPv6 address"}));

TEST(IpPrefix, HostBitsErrorSuggestsTheFix) {
  try {
    (void)IpPrefix::parse("10.0.0.1/8");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 10.0.0.0/8?"), std::string::npos)
        << e.what();
  }
}

TEST(IpPrefix, EmbeddedNulIsRefused) {
  using namespace std::string_view_literals;
  EXPECT_FALSE(IpPrefix::try_parse("10.0.0.0\0junk"sv));
  EXPECT_FALSE(IpPrefix::try_parse("10.0.0.0/8\0"sv));
}

// --- parse_rules ----------------------------------------------------------

TEST(AccessListParse, ReadsRulesCommentsAndBlankLines) {
  const auto rules = AccessList::parse_rules(
      "# office and lab\n"
      "\n"
      "allow 10.0.0.0/8   # office\n"
      "  deny\t192.168.0.0/16\r\n"
      "   \t \n"
      "allow ::1\n"
      "deny 2001:db8::/32#no space before the comment",
      "rules.txt");
  ASSERT_EQ(rules.size(), 4u);
  EXPECT_EQ(rules[0].action, Access::allow);
  EXPECT_EQ(rules[0].prefix.to_string(), "10.0.0.0/8");
  EXPECT_EQ(rules[1].action, Access::deny);
  EXPECT_EQ(rules[1].prefix.to_string(), "192.168.0.0/16");
  EXPECT_EQ(rules[2].prefix.to_string(), "::1/128");
  EXPECT_EQ(rules[3].action, Access::deny);
  EXPECT_EQ(rules[3].prefix.to_string(), "2001:db8::/32");
}

TEST(AccessListParse, EmptyTextHasNoRules) {
  EXPECT_TRUE(AccessList::parse_rules("", "x").empty());
  EXPECT_TRUE(AccessList::parse_rules("\n\n# nothing\n", "x").empty());
}

struct BadRules {
  const char* text;
  const char* message;
};

class AccessListParseRejects : public ::testing::TestWithParam<BadRules> {};

TEST_P(AccessListParseRejects, NamingOriginAndLine) {
  const BadRules& bad = GetParam();
  try {
    (void)AccessList::parse_rules(bad.text, "acl.conf");
    FAIL() << "accepted " << bad.text;
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), bad.message);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, AccessListParseRejects,
    ::testing::Values(
        BadRules{"permit 10.0.0.0/8",
                 "acl.conf:1: unknown action 'permit' (expected allow or deny)"},
        BadRules{"allow 10.0.0.0/8\nALLOW 1.2.3.4",
                 "acl.conf:2: unknown action 'ALLOW' (expected allow or deny)"},
        BadRules{"\n\n\ndeny", "acl.conf:4: missing prefix after 'deny'"},
        BadRules{"deny # 10.0.0.0/8", "acl.conf:1: missing prefix after 'deny'"},
        BadRules{"allow 10.0.0.0/8 extra", "acl.conf:1: unexpected 'extra' after the prefix"},
        BadRules{"allow 10.0.0.0 /8", "acl.conf:1: unexpected '/8' after the prefix"},
        BadRules{"# ok\nallow 10.0.0.1/8",
                 "acl.conf:2: bad prefix '10.0.0.1/8': host bits are set below the prefix "
                 "length (did you mean 10.0.0.0/8?)"},
        BadRules{"deny 10.0.0.0/33",
                 "acl.conf:1: bad prefix '10.0.0.0/33': prefix length out of range for IPv4 "
                 "(0-32)"},
        BadRules{"deny [::1]",
                 "acl.conf:1: bad prefix '[::1]': no brackets around an IPv6 address in a "
                 "prefix"},
        BadRules{"deny 1.2.3.4:80",
                 "acl.conf:1: bad prefix '1.2.3.4:80': no port is allowed in a prefix"},
        BadRules{"allow example.com",
                 "acl.conf:1: bad prefix 'example.com': not an IPv4 or IPv6 address"}));

TEST(AccessListParse, QuotesBadTextPrintablyAndShort) {
  auto message = [](std::string_view text) {
    try {
      (void)AccessList::parse_rules(text, "acl");
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  using namespace std::string_view_literals;
  EXPECT_EQ(message("deny 1.2.3.4\x01\\"sv),
            "acl:1: bad prefix '1.2.3.4\\x01\\x5c': not an IPv4 or IPv6 address");
  EXPECT_EQ(message("allow 10.0.0.0\0/8"sv),
            "acl:1: bad prefix '10.0.0.0\\x00/8': not an IPv4 or IPv6 address");
  EXPECT_EQ(message("d\xc3\xa9ny ::1"sv),
            "acl:1: unknown action 'd\\xc3\\xa9ny' (expected allow or deny)");
  EXPECT_EQ(message("allow " + std::string(100, 'a')),
            "acl:1: bad prefix '" + std::string(64, 'a') +
                "... (36 more bytes)': not an IPv4 or IPv6 address");
}

// --- AccessList semantics -------------------------------------------------

TEST(AccessList, DefaultConstructedAllowsEveryone) {
  AccessList list;
  EXPECT_EQ(list.check(ip("1.2.3.4")), Access::allow);
  EXPECT_EQ(list.check(ip("::1")), Access::allow);
  EXPECT_EQ(list.rule_count(), 0u);
}

TEST(AccessList, NoRulesGivesTheDefault) {
  AccessList deny_all({}, Access::deny);
  EXPECT_EQ(deny_all.check(ip("1.2.3.4")), Access::deny);
  EXPECT_EQ(deny_all.check(ip("2001:db8::1")), Access::deny);
}

TEST(AccessList, UnmatchedAddressesGetTheDefault) {
  auto allow_by_default = compile("deny 10.0.0.0/8", Access::allow);
  EXPECT_EQ(allow_by_default.check(ip("10.1.1.1")), Access::deny);
  EXPECT_EQ(allow_by_default.check(ip("11.1.1.1")), Access::allow);
  auto deny_by_default = compile("allow 10.0.0.0/8", Access::deny);
  EXPECT_EQ(deny_by_default.check(ip("10.1.1.1")), Access::allow);
  EXPECT_EQ(deny_by_default.check(ip("11.1.1.1")), Access::deny);
  EXPECT_EQ(deny_by_default.rule_count(), 1u);
}

TEST(AccessList, FirstMatchWinsNarrowBeforeWide) {
  auto list = compile("deny 10.1.0.0/16\nallow 10.0.0.0/8", Access::deny);
  EXPECT_EQ(list.check(ip("10.1.2.3")), Access::deny);
  EXPECT_EQ(list.check(ip("10.2.0.0")), Access::allow);
  EXPECT_EQ(list.check(ip("10.0.255.255")), Access::allow);
  EXPECT_EQ(list.check(ip("11.0.0.0")), Access::deny);
}

TEST(AccessList, FirstMatchWinsWideBeforeNarrow) {
  // The narrower rule is shadowed: the wide one already decided.
  auto list = compile("allow 10.0.0.0/8\ndeny 10.1.0.0/16", Access::deny);
  EXPECT_EQ(list.check(ip("10.1.2.3")), Access::allow);
  EXPECT_EQ(list.check(ip("10.200.0.1")), Access::allow);
}

TEST(AccessList, OverlappingAndNestedRules) {
  auto list = compile(
      "deny 10.0.0.5\n"
      "allow 10.0.0.0/30\n"   // 10.0.0.0-3
      "deny 10.0.0.0/29\n"    // 4-7 left, 5 already decided
      "allow 10.0.0.0/24\n",  // 8-255
      Access::deny);
  EXPECT_EQ(list.check(ip("10.0.0.0")), Access::allow);
  EXPECT_EQ(list.check(ip("10.0.0.3")), Access::allow);
  EXPECT_EQ(list.check(ip("10.0.0.4")), Access::deny);
  EXPECT_EQ(list.check(ip("10.0.0.5")), Access::deny);
  EXPECT_EQ(list.check(ip("10.0.0.7")), Access::deny);
  EXPECT_EQ(list.check(ip("10.0.0.8")), Access::allow);
  EXPECT_EQ(list.check(ip("10.0.0.255")), Access::allow);
  EXPECT_EQ(list.check(ip("10.0.1.0")), Access::deny);
}

TEST(AccessList, RangeBoundaries) {
  auto list = compile("deny 192.168.4.0/22", Access::allow);
  EXPECT_EQ(list.check(ip("192.168.3.255")), Access::allow);
  EXPECT_EQ(list.check(ip("192.168.4.0")), Access::deny);
  EXPECT_EQ(list.check(ip("192.168.7.255")), Access::deny);
  EXPECT_EQ(list.check(ip("192.168.8.0")), Access::allow);
}

TEST(AccessList, EdgesOfTheWholeSpace) {
  auto list = compile("deny ::/128\ndeny ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Access::allow);
  EXPECT_EQ(list.check(ip("::")), Access::deny);
  EXPECT_EQ(list.check(ip("::1")), Access::allow);
  EXPECT_EQ(list.check(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")), Access::deny);
  EXPECT_EQ(list.check(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")), Access::allow);
}

TEST(AccessList, AllOfIpv4VersusEverything) {
  auto v4_only = compile("deny 0.0.0.0/0", Access::allow);
  EXPECT_EQ(v4_only.check(ip("0.0.0.0")), Access::deny);
  EXPECT_EQ(v4_only.check(ip("255.255.255.255")), Access::deny);
  EXPECT_EQ(v4_only.check(ip("::ffff:8.8.8.8")), Access::deny);
  EXPECT_EQ(v4_only.check(ip("::1")), Access::allow);
  EXPECT_EQ(v4_only.check(ip("2001:db8::1")), Access::allow);
  auto everything = compile("allow 127.0.0.1\ndeny ::/0", Access::allow);
  EXPECT_EQ(everything.check(ip("127.0.0.1")), Access::allow);
  EXPECT_EQ(everything.check(ip("127.0.0.2")), Access::deny);
  EXPECT_EQ(everything.check(ip("::1")), Access::deny);
  EXPECT_EQ(everything.check(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")), Access::deny);
}

TEST(AccessList, Ipv4RulesMatchMappedClientsAndBack) {
  auto v4_rules = compile("deny 10.0.0.0/8", Access::allow);
  EXPECT_EQ(v4_rules.check(ip("10.1.2.3")), Access::deny);
  EXPECT_EQ(v4_rules.check(ip("::ffff:10.1.2.3")), Access::deny);
  EXPECT_EQ(v4_rules.check(ip("::ffff:11.1.2.3")), Access::allow);
  auto mapped_rules = compile("deny ::ffff:10.0.0.0/104", Access::allow);
  EXPECT_EQ(mapped_rules.check(ip("10.1.2.3")), Access::deny);
  EXPECT_EQ(mapped_rules.check(ip("::ffff:10.1.2.3")), Access::deny);
  EXPECT_EQ(mapped_rules.check(ip("11.1.2.3")), Access::allow);
  // The deprecated IPv4-compatible form ::a.b.c.d is not IPv4.
  EXPECT_EQ(v4_rules.check(ip("::10.1.2.3")), Access::allow);
}

TEST(AccessList, Ipv6Rules) {
  auto list = compile(
      "allow 2001:db8:1::/48\n"
      "deny 2001:db8::/32\n"
      "allow fe80::/10\n",
      Access::deny);
  EXPECT_EQ(list.check(ip("2001:db8:1:ffff::1")), Access::allow);
  EXPECT_EQ(list.check(ip("2001:db8:2::1")), Access::deny);
  EXPECT_EQ(list.check(ip("fe80::1%1")), Access::allow);  // the zone does not matter
  EXPECT_EQ(list.check(ip("febf:ffff::1")), Access::allow);
  EXPECT_EQ(list.check(ip("fec0::")), Access::deny);
  EXPECT_EQ(list.check(ip("10.0.0.1")), Access::deny);
}

TEST(AccessList, RepeatedRulesCountButDoNotChangeTheAnswer) {
  auto list = compile("deny 1.2.3.4\ndeny 1.2.3.4\nallow 1.2.3.4", Access::allow);
  EXPECT_EQ(list.rule_count(), 3u);
  EXPECT_EQ(list.check(ip("1.2.3.4")), Access::deny);
}

// --- randomized comparison with the linear reference ----------------------

class RandomRules {
 public:
  explicit RandomRules(unsigned seed) : random_(seed) {}

  // Prefixes drawn from a small pool of networks, so that rules overlap,
  // nest and repeat often.
  AccessRule rule() {
    const bool v4 = coin();
    const int bits = v4 ? 32 : 128;
    // Mostly long prefixes: a few short ones early would decide everything.
    const int shortest = random_() % 10 == 0 ? 0 : bits / 2;
    const int length = std::uniform_int_distribution<int>(shortest, bits)(random_);
    unsigned __int128 base = number(v4);
    const int host_bits = bits - length;
    if (host_bits == 128) {
      base = 0;
    } else if (host_bits > 0) {
      base &= ~((static_cast<unsigned __int128>(1) << host_bits) - 1);
    }
    std::string text = v4 ? v4_text(base) : v6_text(base);
    text += '/';
    text += std::to_string(length);
    return {coin() ? Access::allow : Access::deny, IpPrefix::parse(text)};
  }

  SocketAddress address() {
    const bool v4 = coin();
    const unsigned __int128 value = number(v4);
    return ip(v4 ? v4_text(value).c_str() : v6_text(value).c_str());
  }

  bool coin() { return std::uniform_int_distribution<int>(0, 1)(random_) == 1; }

 private:
  // Bits mostly from a few fixed patterns, so random rules and addresses
  // land in each other's ranges.
  unsigned __int128 number(bool v4) {
    static constexpr std::uint32_t kV4Bases[] = {0x0a000000, 0xc0a80000, 0x00000000, 0xffffffff};
    std::uint32_t low = kV4Bases[random_() % 4] ^
                        (random_() & static_cast<std::uint32_t>(0xffffffffull >> (random_() % 33)));
    if (v4) return low;
    unsigned __int128 high = random_() % 4 == 0 ? 0x20010db8u : random_() % 3;
    high = (high << 96) | (static_cast<unsigned __int128>(random_() % 5) << 64);
    return high | (static_cast<unsigned __int128>(random_() % 3 == 0 ? 0xffff : 0) << 32) | low;
  }

  static std::string v4_text(unsigned __int128 value) {
    in_addr bytes{htonl(static_cast<std::uint32_t>(value))};
    char text[INET_ADDRSTRLEN];
    return ::inet_ntop(AF_INET, &bytes, text, sizeof text);
  }

  static std::string v6_text(unsigned __int128 value) {
    in6_addr bytes;
    for (int i = 15; i >= 0; --i, value >>= 8)
      bytes.s6_addr[i] = static_cast<std::uint8_t>(value);
    char text[INET6_ADDRSTRLEN];
    return ::inet_ntop(AF_INET6, &bytes, text, sizeof text);
  }

  std::mt19937 random_;
};

TEST(AccessList, MatchesLinearFirstMatchOnRandomRules) {
  for (unsigned seed = 1; seed <= 20; ++seed) {
    RandomRules random(seed);
    std::vector<AccessRule> rules;
    const int rule_count = seed <= 10 ? static_cast<int>(seed) : 2000;
    for (int i = 0; i < rule_count; ++i)
      rules.push_back(random.rule());
    const Access default_action = random.coin() ? Access::allow : Access::deny;
    AccessList list(rules, default_action);
    for (int i = 0; i < 2000; ++i) {
      const SocketAddress address = random.address();
      ASSERT_EQ(list.check(address), check_linearly(rules, default_action, address))
          << "seed " << seed << ", address " << address.ip_string();
    }
    // Every rule's first and last address and their neighbours, where
    // off-by-one errors live.
    for (const AccessRule& rule : rules) {
      const auto first = rule.prefix.first();
      const auto last = rule.prefix.last();
      for (auto edge : {first - 1, first, last, last + 1}) {
        in6_addr bytes;
        for (int i = 15; i >= 0; --i, edge >>= 8)
          bytes.s6_addr[i] = static_cast<std::uint8_t>(edge);
        char text[INET6_ADDRSTRLEN];
        const SocketAddress address = ip(::inet_ntop(AF_INET6, &bytes, text, sizeof text));
        ASSERT_EQ(list.check(address), check_linearly(rules, default_action, address))
            << "seed " << seed << ", edge " << text;
      }
    }
  }
}

TEST(AccessList, HundredThousandRulesBuildQuickly) {
  RandomRules random(99);
  std::vector<AccessRule> rules;
  for (int i = 0; i < 100'000; ++i)
    rules.push_back(random.rule());
  // Generous for sanitizer builds on a loaded machine; about 50 ms in a
  // release build (see docs/access-control.md).
  const auto start = std::chrono::steady_clock::now();
  AccessList list(rules, Access::deny);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(list.rule_count(), 100'000u);
  for (int i = 0; i < 200; ++i) {
    const SocketAddress address = random.address();
    ASSERT_EQ(list.check(address), check_linearly(rules, Access::deny, address));
  }
}

}  // namespace
}  // namespace salam
