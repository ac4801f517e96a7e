#include <stdexcept>

#include <gtest/gtest.h>

#include <salam/address.hpp>

namespace salam {
namespace {

TEST(SocketAddress, ParsesIpv4) {
  auto address = SocketAddress::parse("127.0.0.1:8888");
  EXPECT_TRUE(address.is_v4());
  EXPECT_EQ(address.port(), 8888);
  EXPECT_EQ(address.to_string(), "127.0.0.1:8888");
  EXPECT_EQ(address.ip_string(), "127.0.0.1");
}

TEST(SocketAddress, ParsesIpv6InBrackets) {
  auto address = SocketAddress::parse("[::1]:8888");
  EXPECT_TRUE(address.is_v6());
  EXPECT_EQ(address.port(), 8888);
  EXPECT_EQ(address.to_string(), "[::1]:8888");
  EXPECT_EQ(SocketAddress::parse("[::]:0").to_string(), "[::]:0");
  EXPECT_TRUE(SocketAddress::parse("[::]:0").is_unspecified());
  EXPECT_EQ(SocketAddress::parse("[2001:db8::1]:65535").to_string(), "[2001:db8::1]:65535");
}

TEST(SocketAddress, NumericZoneIsKept) {
  auto address = SocketAddress::parse("[fe80::1%1]:80");
  EXPECT_EQ(address.to_string(), "[fe80::1%1]:80");
}

TEST(SocketAddress, EqualityComparesFamilyAddressAndPort) {
  EXPECT_EQ(SocketAddress::parse("10.0.0.1:1"), SocketAddress::parse("10.0.0.1:1"));
  EXPECT_NE(SocketAddress::parse("10.0.0.1:1"), SocketAddress::parse("10.0.0.1:2"));
  EXPECT_NE(SocketAddress::parse("10.0.0.1:1"), SocketAddress::parse("10.0.0.2:1"));
  EXPECT_NE(SocketAddress::parse("[::1]:1"), SocketAddress::parse("127.0.0.1:1"));
}

struct BadAddress {
  const char* text;
  const char* reason;
};

class SocketAddressRejects : public ::testing::TestWithParam<BadAddress> {};

TEST_P(SocketAddressRejects, WithAClearReason) {
  const BadAddress& bad = GetParam();
  std::string_view why;
  EXPECT_FALSE(SocketAddress::try_parse(bad.text, &why)) << bad.text;
  EXPECT_EQ(why, bad.reason) << bad.text;
  try {
    (void)SocketAddress::parse(bad.text);
    FAIL() << "parse accepted " << bad.text;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(bad.reason), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(bad.text), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, SocketAddressRejects,
    ::testing::Values(
        BadAddress{"", "expected ADDRESS:PORT"}, BadAddress{"127.0.0.1", "expected ADDRESS:PORT"},
        BadAddress{"127.0.0.1:", "missing port after ':'"},
        BadAddress{"127.0.0.1:65536", "port out of range (0-65535)"},
        BadAddress{"127.0.0.1:99999999999999", "port out of range (0-65535)"},
        BadAddress{"127.0.0.1:-1", "port is not a number"},
        BadAddress{"127.0.0.1:80x", "port is not a number"},
        BadAddress{"127.0.0.1: 80", "port is not a number"},
        BadAddress{":80", "missing address before ':'"},
        BadAddress{"localhost:80", "not an IPv4 or IPv6 address (host names are not resolved)"},
        BadAddress{"256.0.0.1:80", "not an IPv4 or IPv6 address (host names are not resolved)"},
        BadAddress{"1.2.3:80", "not an IPv4 or IPv6 address (host names are not resolved)"},
        BadAddress{"::1:80", "an IPv6 address must be in brackets, as in [::1]:8888"},
        BadAddress{"[::1:80", "missing ']' after IPv6 address"},
        BadAddress{"[::1]80", "expected ':PORT' after ']'"},
        BadAddress{"[::1]", "expected ':PORT' after ']'"},
        BadAddress{"[]:80", "missing address before ':'"},
        BadAddress{"[fe80::1%]:80", "not an IPv4 or IPv6 address (host names are not resolved)"},
        BadAddress{"[1.2.3.4]:80", "not an IPv4 or IPv6 address (host names are not resolved)"}));

TEST(SocketAddress, MappedIpv4BecomesIpv4) {
  EXPECT_EQ(SocketAddress::parse("[::ffff:192.0.2.1]:80").without_v4_mapping(),
            SocketAddress::parse("192.0.2.1:80"));
  EXPECT_EQ(SocketAddress::parse("[2001:db8::1]:80").without_v4_mapping(),
            SocketAddress::parse("[2001:db8::1]:80"));
  EXPECT_EQ(SocketAddress::parse("10.0.0.1:5").without_v4_mapping(),
            SocketAddress::parse("10.0.0.1:5"));
}

TEST(SocketAddress, FormatsThroughFmt) {
  EXPECT_EQ(fmt::format("client {} connected", SocketAddress::parse("127.0.0.1:54321")),
            "client 127.0.0.1:54321 connected");
  EXPECT_EQ(fmt::format("{}", SocketAddress::parse("[::1]:54321")), "[::1]:54321");
}

}  // namespace
}  // namespace salam
