#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include <salam/proxy_protocol.hpp>

namespace salam::proxy {
namespace {

std::span<const std::byte> bytes_of(std::string_view text) {
  return std::as_bytes(std::span(text.data(), text.size()));
}

std::string text_of(const std::vector<std::byte>& bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

ParseResult parse_text(std::string_view text, std::size_t max_v2_length = kDefaultMaxV2Length) {
  return parse(bytes_of(text), max_v2_length);
}

const std::string kSignature("\r\n\r\n\0\r\nQUIT\n", 12);

// A v2 header by hand: signature, version and command, family, length, body.
std::string v2(std::uint8_t version_command, std::uint8_t family, const std::string& body) {
  std::string header = kSignature;
  header += static_cast<char>(version_command);
  header += static_cast<char>(family);
  header += static_cast<char>(body.size() >> 8);
  header += static_cast<char>(body.size() & 0xFF);
  return header + body;
}

std::string tlv(std::uint8_t type, const std::string& value) {
  std::string out(1, static_cast<char>(type));
  out += static_cast<char>(value.size() >> 8);
  out += static_cast<char>(value.size() & 0xFF);
  return out + value;
}

const std::string kIpv4Block("\xC0\x00\x02\x01\x0A\x00\x00\x01\x30\x39\x01\xBB", 12);

bool same_address(const std::optional<SocketAddress>& a, const std::optional<SocketAddress>& b) {
  return a.has_value() == b.has_value() && (!a || *a == *b);
}

bool same_result(const ParseResult& a, const ParseResult& b) {
  return a.status == b.status && a.error == b.error && a.header.version == b.header.version &&
         a.header.command == b.header.command && a.header.length == b.header.length &&
         same_address(a.header.source, b.header.source) &&
         same_address(a.header.destination, b.header.destination);
}

// The key property: every proper prefix of a header is `incomplete`, and
// any longer input gives the same complete header.
void expect_prefixes_wait(const std::string& header, const std::string& payload = "payload") {
  const std::string input = header + payload;
  const ParseResult whole = parse_text(input, 16 + 0xFFFF);
  ASSERT_EQ(whole.status, Status::complete) << whole.error;
  ASSERT_EQ(whole.header.length, header.size());
  for (std::size_t k = 0; k < header.size(); ++k) {
    const ParseResult part = parse_text(std::string_view(input).substr(0, k), 16 + 0xFFFF);
    ASSERT_EQ(part.status, Status::incomplete) << "prefix of " << k << ": " << part.error;
  }
  for (std::size_t k = header.size(); k <= input.size(); ++k) {
    const ParseResult part = parse_text(std::string_view(input).substr(0, k), 16 + 0xFFFF);
    ASSERT_TRUE(same_result(part, whole)) << "prefix of " << k;
  }
}

// Byte by byte, the first answer that is not `incomplete` is the answer for
// the whole input.
void expect_first_answer_is_final(const std::string& input) {
  const ParseResult whole = parse_text(input);
  for (std::size_t k = 0; k <= input.size(); ++k) {
    const ParseResult part = parse_text(std::string_view(input).substr(0, k));
    if (part.status == Status::incomplete) continue;
    EXPECT_TRUE(same_result(part, whole))
        << "prefix of " << k << ": " << part.error << " vs " << whole.error;
    return;
  }
  EXPECT_EQ(whole.status, Status::incomplete);
}

// ---------------------------------------------------------------------------

TEST(ProxyCrc32c, StandardCheckValue) {
  EXPECT_EQ(crc32c(bytes_of("123456789")), 0xE3069283u);
  EXPECT_EQ(crc32c(bytes_of("")), 0u);
}

TEST(ProxyCrc32c, Rfc3720Vectors) {
  // RFC 3720 appendix B.4 (iSCSI), the vectors RFC 4960 also relies on.
  EXPECT_EQ(crc32c(bytes_of(std::string(32, '\0'))), 0x8A9136AAu);
  EXPECT_EQ(crc32c(bytes_of(std::string(32, '\xFF'))), 0x62A8AB43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i)
    ascending += static_cast<char>(i);
  EXPECT_EQ(crc32c(bytes_of(ascending)), 0x46DD794Eu);
}

TEST(ProxyCrc32c, ContinuesARunningValue) {
  const std::string text = "The quick brown fox jumps over the lazy dog";
  for (std::size_t cut = 0; cut <= text.size(); ++cut) {
    const std::uint32_t first = crc32c(bytes_of(std::string_view(text).substr(0, cut)));
    EXPECT_EQ(crc32c(bytes_of(std::string_view(text).substr(cut)), first), crc32c(bytes_of(text)));
  }
}

// ---------------------------------------------------------------------------

TEST(ProxyDetect, HeadersOfBothVersions) {
  EXPECT_EQ(detect(bytes_of("PROXY ")), Detection::header);
  EXPECT_EQ(detect(bytes_of("PROXY TCP4 1.2.3.4")), Detection::header);
  EXPECT_EQ(detect(bytes_of(kSignature)), Detection::header);
  EXPECT_EQ(detect(bytes_of(kSignature + "\x21")), Detection::header);
}

TEST(ProxyDetect, PrefixesNeedMore) {
  EXPECT_EQ(detect(bytes_of("")), Detection::need_more);
  EXPECT_EQ(detect(bytes_of("P")), Detection::need_more);
  EXPECT_EQ(detect(bytes_of("PROXY")), Detection::need_more);
  for (std::size_t k = 1; k < kSignature.size(); ++k) {
    EXPECT_EQ(detect(bytes_of(kSignature.substr(0, k))), Detection::need_more) << k;
  }
}

TEST(ProxyDetect, OtherProtocols) {
  EXPECT_EQ(detect(bytes_of("GET / HTTP/1.1\r\n")), Detection::not_header);
  EXPECT_EQ(detect(bytes_of("PROXYTCP4")), Detection::not_header);
  EXPECT_EQ(detect(bytes_of("PRO\r")), Detection::not_header);
  EXPECT_EQ(detect(bytes_of("\x16\x03\x01")), Detection::not_header);  // a TLS hello
  EXPECT_EQ(detect(bytes_of("\r\n\r\n")), Detection::need_more);
  EXPECT_EQ(detect(bytes_of("\r\n\r\nX")), Detection::not_header);
  EXPECT_EQ(detect(bytes_of("SSH-2.0-OpenSSH")), Detection::not_header);
}

// ---------------------------------------------------------------------------

TEST(ProxyV1, Tcp4) {
  const std::string line = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
  const ParseResult result = parse_text(line + "GET / HTTP/1.1\r\n");
  ASSERT_EQ(result.status, Status::complete) << result.error;
  EXPECT_TRUE(result.error.empty());
  EXPECT_EQ(result.header.version, Version::v1);
  EXPECT_EQ(result.header.command, Command::proxy);
  EXPECT_EQ(result.header.length, line.size());
  EXPECT_EQ(result.header.source->to_string(), "192.168.0.1:56324");
  EXPECT_EQ(result.header.destination->to_string(), "192.168.0.11:443");
}

TEST(ProxyV1, Tcp4Extremes) {
  const std::string widest = "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
  EXPECT_EQ(widest.size(), 56u);
  const ParseResult result = parse_text(widest);
  ASSERT_EQ(result.status, Status::complete) << result.error;
  EXPECT_EQ(result.header.source->to_string(), "255.255.255.255:65535");
  const ParseResult zeros = parse_text("PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n");
  ASSERT_EQ(zeros.status, Status::complete) << zeros.error;
  EXPECT_EQ(zeros.header.destination->to_string(), "0.0.0.0:0");
}

TEST(ProxyV1, Tcp6Forms) {
  struct Case {
    const char* text;
    const char* canonical;
  };
  const Case cases[] = {
      {"::1", "::1"},
      {"::", "::"},
      {"2001:db8::1", "2001:db8::1"},
      {"2001:DB8:0:0:0:0:0:1", "2001:db8::1"},
      {"0001:0002:0003:0004:0005:0006:0007:0008", "1:2:3:4:5:6:7:8"},
      {"1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"},
      {"::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8"},
      {"fe80::", "fe80::"},
      {"::ffff:192.0.2.1", "::ffff:192.0.2.1"},
      {"1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"},
      {"::1.2.3.4", "::1.2.3.4"},
  };
  for (const Case& c : cases) {
    const std::string line = std::string("PROXY TCP6 ") + c.text + " ::1 1 2\r\n";
    const ParseResult result = parse_text(line);
    ASSERT_EQ(result.status, Status::complete) << c.text << ": " << result.error;
    EXPECT_TRUE(result.header.source->is_v6());
    EXPECT_EQ(result.header.source->ip_string(), c.canonical);
    EXPECT_EQ(result.header.source->port(), 1);
    EXPECT_EQ(result.header.destination->port(), 2);
  }
}

TEST(ProxyV1, Tcp6Widest) {
  const std::string full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  const std::string line = "PROXY TCP6 " + full + " " + full + " 65535 65535\r\n";
  EXPECT_EQ(line.size(), 104u);
  EXPECT_EQ(parse_text(line).status, Status::complete);
}

TEST(ProxyV1, UnknownHasNoAddresses) {
  for (const char* line :
       {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN \r\n", "PROXY UNKNOWN ::1 ::2 3 4\r\n",
        "PROXY UNKNOWN anything \x01\xFF\t\r\n"}) {
    const ParseResult result = parse_text(line);
    ASSERT_EQ(result.status, Status::complete) << line << ": " << result.error;
    EXPECT_EQ(result.header.length, std::string_view(line).size());
    EXPECT_FALSE(result.header.source);
    EXPECT_FALSE(result.header.destination);
    EXPECT_EQ(result.header.command, Command::proxy);
  }
}

TEST(ProxyV1, LongestLineIs107Bytes) {
  const std::string full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  const std::string worst = "PROXY UNKNOWN " + full + " " + full + " 65535 65535\r\n";
  ASSERT_EQ(worst.size(), kMaxV1Length);
  EXPECT_EQ(parse_text(worst).status, Status::complete);
  const std::string longer = "PROXY UNKNOWN " + full + " " + full + " 65535 65535 \r\n";
  const ParseResult result = parse_text(longer);
  EXPECT_EQ(result.status, Status::invalid);
  EXPECT_NE(result.error.find("too long"), std::string_view::npos);
}

TEST(ProxyV1, RefusedAsSoonAsNoCrlfCanFit) {
  const std::string start = "PROXY UNKNOWN ";
  // 105 bytes: a CRLF still fits.
  EXPECT_EQ(parse_text(start + std::string(105 - start.size(), 'x')).status, Status::incomplete);
  // 106 bytes: only if the last one is the CR.
  EXPECT_EQ(parse_text(start + std::string(105 - start.size(), 'x') + "\r").status,
            Status::incomplete);
  EXPECT_EQ(parse_text(start + std::string(106 - start.size(), 'x')).status, Status::invalid);
  // A TCP6 line cannot fit once its addresses leave no room for the ports.
  const std::string mapped = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
  const ParseResult result = parse_text("PROXY TCP6 " + mapped + " " + mapped);
  EXPECT_EQ(result.status, Status::invalid);
  EXPECT_NE(result.error.find("too long"), std::string_view::npos);
}

TEST(ProxyV1, RefusedAtTheFirstBadByte) {
  // The rest of a line is not awaited once it cannot be valid.
  for (const char* prefix : {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ", "PROXY TCP6 1:2:3:4:5:6:7:8:",
                             "PROXY TCP4 1.2.3.4 5.6.7.8 01", "PROXY TCP4 256", "PROXY TCP7",
                             "PROXY TCP4 1.2.3.4 5.6.7.8 65536", "POST", "PROXY UNKNOWN\rX",
                             "PROXY TCP6 ::1:2:3:4:5:6:7:", "PROXY TCP6 1::1.2.3.4."}) {
    EXPECT_EQ(parse_text(prefix).status, Status::invalid) << prefix;
  }
  for (const char* prefix : {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2", "PROXY TCP6 1:2:3:4:5:6:7:8",
                             "PROXY TCP6 1::1.2.3.4", "PROXY TCP6 ::1:2:3:4:5:6"}) {
    EXPECT_EQ(parse_text(prefix).status, Status::incomplete) << prefix;
  }
}

struct Rejected {
  std::string input;
  const char* reason;  // a part of the error
};

void PrintTo(const Rejected& rejected, std::ostream* out) {
  *out << rejected.input;
}

class ProxyV1Rejects : public ::testing::TestWithParam<Rejected> {};

TEST_P(ProxyV1Rejects, ForTheRightReason) {
  const Rejected& bad = GetParam();
  const ParseResult result = parse_text(bad.input);
  ASSERT_EQ(result.status, Status::invalid);
  EXPECT_NE(result.error.find(bad.reason), std::string_view::npos)
      << "error: " << result.error << ", expected: " << bad.reason;
  expect_first_answer_is_final(bad.input);
}

INSTANTIATE_TEST_SUITE_P(
    ProxyV1Lines, ProxyV1Rejects,
    ::testing::Values(
        Rejected{"GET / HTTP/1.1\r\n", "not a PROXY protocol header"},
        Rejected{"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not a PROXY protocol header"},
        Rejected{"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not a PROXY protocol header"},
        Rejected{"\x16\x03\x01\x02\x00", "not a PROXY protocol header"},
        Rejected{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "LF without CR"},
        Rejected{"PROXY UNKNOWN\n", "LF without CR"},
        Rejected{"PROXY UNKNOWN foo\nbar\r\n", "LF without CR"},
        Rejected{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", "CR not followed by LF"},
        Rejected{"PROXY UNKNOWN a\rb\r\n", "CR not followed by LF"},
        Rejected{"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "unknown protocol"},
        Rejected{"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "unknown protocol"},
        Rejected{"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "unknown protocol"},
        Rejected{"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "unknown protocol"},
        Rejected{"PROXY UNKNOWNX\r\n", "unknown protocol"},
        Rejected{"PROXY TCP\r\n", "unknown protocol"},
        Rejected{"PROXY TCP4\r\n", "line ends before"},
        Rejected{"PROXY TCP4 1.2.3.4 5.6.7.8\r\n", "line ends before"},
        Rejected{"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "line ends before"},
        Rejected{"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "bad source address"},
        Rejected{"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "bad source address"},
        Rejected{"PROXY TCP4 1.2.3.00 5.6.7.8 1 2\r\n", "bad source address"},
        Rejected{"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "bad source address"},
        Rejected{"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "bad source address"},
        Rejected{"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", "bad source address"},
        Rejected{"PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n", "bad source address"},
        Rejected{"PROXY TCP4 0x1.2.3.4 5.6.7.8 1 2\r\n", "bad source address"},
        Rejected{"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "bad source address"},
        Rejected{"PROXY TCP4 1.2.3.4 ::1 1 2\r\n", "bad destination address"},
        Rejected{"PROXY TCP4 1.2.3.4 5.6.7.8.\r\n", "bad destination address"},
        Rejected{"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "bad source address"},
        Rejected{"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "bad source address"},
        Rejected{"PROXY TCP6 12345:: ::1 1 2\r\n", "bad source address"},
        Rejected{"PROXY TCP6 :1:: ::1 1 2\r\n", "bad source address"},
        Rejected{"PROXY TCP6 1: ::1 1 2\r\n", "bad source address"},
        Rejected{"PROXY TCP6 ::: ::1 1 2\r\n", "bad source address"},
        Rejected{"PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n", "bad source address"},
        Rejected{"PROXY TCP6 g::1 ::1 1 2\r\n", "bad source address"},
        Rejected{"PROXY TCP6 [::1] ::1 1 2\r\n", "bad source address"},
        Rejected{"PROXY TCP6 ::1 1:2:3:4:5:6:7:8:9 1 2\r\n", "bad destination address"},
        Rejected{"PROXY TCP6 ::1 1::2::3 1 2\r\n", "bad destination address"},
        Rejected{"PROXY TCP6 ::1 1:2:3:4:5:6:7:8::\r\n", "bad destination address"},
        Rejected{"PROXY TCP6 ::1 ::1:2:3:4:5:6:7:8 1 2\r\n", "bad destination address"},
        Rejected{"PROXY TCP6 ::1 ::ffff:01.2.3.4 1 2\r\n", "bad destination address"},
        Rejected{"PROXY TCP6 ::1 1:2:3:4:5:6:7:1.2.3.4 1 2\r\n", "bad destination address"},
        Rejected{"PROXY TCP6 ::1 1:2:3:4:5::6:1.2.3.4 1 2\r\n", "bad destination address"},
        Rejected{"PROXY TCP6 ::1 ::a.2.3.4 1 2\r\n", "bad destination address"},
        Rejected{"PROXY TCP6 ::1 ::1.2.3 1 2\r\n", "bad destination address"},
        Rejected{"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "bad source port"},
        Rejected{"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "bad source port"},
        Rejected{"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", "bad source port"},
        Rejected{"PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n", "bad source port"},
        Rejected{"PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n", "bad destination port"},
        Rejected{"PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n", "bad destination port"},
        Rejected{"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", "bad destination port"},
        Rejected{"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n", "bad destination port"},
        Rejected{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "expected CRLF"},
        Rejected{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "expected CRLF"},
        Rejected{"PROXY UNKNOWN " + std::string(200, 'x') + "\r\n", "too long"},
        Rejected{"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
                 "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 65535 65535\r\n",
                 "too long"}));

// ---------------------------------------------------------------------------

TEST(ProxyV2, TcpOverIpv4) {
  const std::string header = v2(0x21, 0x11, kIpv4Block);
  const ParseResult result = parse_text(header + "payload");
  ASSERT_EQ(result.status, Status::complete) << result.error;
  EXPECT_EQ(result.header.version, Version::v2);
  EXPECT_EQ(result.header.command, Command::proxy);
  EXPECT_EQ(result.header.length, 28u);
  EXPECT_EQ(result.header.source->to_string(), "192.0.2.1:12345");
  EXPECT_EQ(result.header.destination->to_string(), "10.0.0.1:443");
}

TEST(ProxyV2, TcpOverIpv6) {
  std::string block(36, '\0');
  block[15] = 1;                      // ::1
  block[16] = '\x20', block[17] = 1;  // 2001::
  block[32] = 0, block[33] = 80, block[34] = '\xFF', block[35] = '\xFF';
  const ParseResult result = parse_text(v2(0x21, 0x21, block));
  ASSERT_EQ(result.status, Status::complete) << result.error;
  EXPECT_EQ(result.header.length, 52u);
  EXPECT_EQ(result.header.source->to_string(), "[::1]:80");
  EXPECT_EQ(result.header.destination->to_string(), "[2001::]:65535");
}

TEST(ProxyV2, LocalKeepsTheRealAddresses) {
  // LOCAL ignores the block even when one is sent.
  for (const std::string& header :
       {v2(0x20, 0x00, ""), v2(0x20, 0x11, kIpv4Block), v2(0x20, 0x00, tlv(0x04, "pad"))}) {
    const ParseResult result = parse_text(header);
    ASSERT_EQ(result.status, Status::complete) << result.error;
    EXPECT_EQ(result.header.command, Command::local);
    EXPECT_EQ(result.header.length, header.size());
    EXPECT_FALSE(result.header.source);
    EXPECT_FALSE(result.header.destination);
  }
}

TEST(ProxyV2, FamiliesWithoutUsableAddresses) {
  // UNSPEC, UNIX and UDP: accepted, the real connection's addresses stay.
  const std::string unix_block(216, 'u');
  const std::string ipv6_block(36, '\x01');
  for (const std::string& header :
       {v2(0x21, 0x00, ""), v2(0x21, 0x31, unix_block), v2(0x21, 0x32, unix_block),
        v2(0x21, 0x12, kIpv4Block), v2(0x21, 0x22, ipv6_block)}) {
    const ParseResult result = parse_text(header);
    ASSERT_EQ(result.status, Status::complete) << result.error;
    EXPECT_EQ(result.header.command, Command::proxy);
    EXPECT_EQ(result.header.length, header.size());
    EXPECT_FALSE(result.header.source);
    EXPECT_FALSE(result.header.destination);
  }
}

TEST(ProxyV2, TlvsAreWalkedAndSkipped) {
  const std::string ssl =
      tlv(0x20, std::string("\x01\0\0\0\0", 5) + tlv(0x21, "TLSv1.3") + tlv(0x22, "example.com"));
  const std::string tlvs = tlv(0x01, "h2") + tlv(0x02, "example.com") + tlv(0x04, "") +
                           tlv(0x05, std::string(128, 'i')) + ssl + tlv(0x30, "ns") +
                           tlv(0xE0, "custom");
  const std::string header = v2(0x21, 0x11, kIpv4Block + tlvs);
  const ParseResult result = parse_text(header + "payload");
  ASSERT_EQ(result.status, Status::complete) << result.error;
  EXPECT_EQ(result.header.length, header.size());
  EXPECT_EQ(result.header.source->to_string(), "192.0.2.1:12345");
}

TEST(ProxyV2, Crc32cIsChecked) {
  const auto header = make_v2(Command::proxy, SocketAddress::parse("192.0.2.1:12345"),
                              SocketAddress::parse("10.0.0.1:443"), {{0x01, "h2"}}, true);
  std::string text = text_of(header);
  ASSERT_EQ(parse_text(text).status, Status::complete) << parse_text(text).error;
  // Any changed byte past the signature breaks it, a port as much as the CRC.
  for (std::size_t i : {std::size_t{16}, std::size_t{25}, text.size() - 1}) {
    std::string broken = text;
    broken[i] = static_cast<char>(broken[i] ^ 0x01);
    const ParseResult result = parse_text(broken);
    EXPECT_EQ(result.status, Status::invalid) << i;
    EXPECT_EQ(result.error, "v2: CRC32C mismatch") << i;
  }
}

TEST(ProxyV2, Crc32cOfAHandMadeHeader) {
  // The CRC covers the whole header with its own 4 bytes as zeros, and is
  // sent big-endian.
  std::string header = v2(0x20, 0x00, tlv(0x03, std::string(4, '\0')));
  const std::uint32_t crc = crc32c(bytes_of(header));
  for (int i = 0; i < 4; ++i)
    header[19 + i] = static_cast<char>(crc >> (24 - 8 * i));
  EXPECT_EQ(parse_text(header).status, Status::complete) << parse_text(header).error;
  std::swap(header[19], header[22]);
  EXPECT_EQ(parse_text(header).status, Status::invalid);
}

TEST(ProxyV2, LongestHeaderAllowed) {
  const std::string filler = tlv(0x04, std::string(kDefaultMaxV2Length - 16 - 12 - 3, '\0'));
  const std::string largest = v2(0x21, 0x11, kIpv4Block + filler);
  ASSERT_EQ(largest.size(), kDefaultMaxV2Length);
  EXPECT_EQ(parse_text(largest).status, Status::complete);
  const ParseResult too_large = parse_text(largest, kDefaultMaxV2Length - 1);
  EXPECT_EQ(too_large.status, Status::invalid);
  EXPECT_NE(too_large.error.find("oversized"), std::string_view::npos);
  // Refused from the fixed part alone, before the rest arrives.
  const std::string larger = v2(0x21, 0x11, kIpv4Block + filler + "x");
  EXPECT_EQ(parse_text(larger.substr(0, 16)).status, Status::invalid);
  // The largest the format can carry, when the caller allows it.
  const std::string widest = v2(0x21, 0x00, tlv(0x04, std::string(0xFFFF - 3, '\0')));
  EXPECT_EQ(parse_text(widest, 16 + 0xFFFF).status, Status::complete);
}

class ProxyV2Rejects : public ::testing::TestWithParam<Rejected> {};

TEST_P(ProxyV2Rejects, ForTheRightReason) {
  const Rejected& bad = GetParam();
  const ParseResult result = parse_text(bad.input);
  ASSERT_EQ(result.status, Status::invalid);
  EXPECT_NE(result.error.find(bad.reason), std::string_view::npos)
      << "error: " << result.error << ", expected: " << bad.reason;
  expect_first_answer_is_final(bad.input);
}

std::string with_bad_crc() {
  std::string header = v2(0x21, 0x11, kIpv4Block + tlv(0x03, "abcd"));
  return header;
}

INSTANTIATE_TEST_SUITE_P(
    ProxyV2Headers, ProxyV2Rejects,
    ::testing::Values(
        Rejected{std::string("\r\n\r\n\0\r\nQUIT\r", 12), "not a PROXY protocol header"},
        Rejected{std::string("\r\n\r\n\x01\r\nQUIT\n\x21\x11", 14), "not a PROXY protocol header"},
        Rejected{v2(0x11, 0x11, kIpv4Block), "unsupported version"},
        Rejected{v2(0x31, 0x11, kIpv4Block), "unsupported version"},
        Rejected{v2(0x01, 0x00, ""), "unsupported version"},
        Rejected{v2(0x22, 0x11, kIpv4Block), "unknown command"},
        Rejected{v2(0x2F, 0x00, ""), "unknown command"},
        Rejected{v2(0x21, 0x13, kIpv4Block), "unknown address family"},
        Rejected{v2(0x21, 0x10, kIpv4Block), "unknown address family"},
        Rejected{v2(0x21, 0x01, ""), "unknown address family"},
        Rejected{v2(0x21, 0x41, ""), "unknown address family"},
        Rejected{v2(0x20, 0xFF, ""), "unknown address family"},
        Rejected{v2(0x21, 0x11, kIpv4Block.substr(0, 11)), "address block longer"},
        Rejected{v2(0x21, 0x21, std::string(35, '\0')), "address block longer"},
        Rejected{v2(0x21, 0x31, std::string(215, '\0')), "address block longer"},
        Rejected{v2(0x20, 0x11, ""), "address block longer"},
        Rejected{v2(0x21, 0x00, std::string(kDefaultMaxV2Length - 15, '\0')), "oversized"},
        Rejected{v2(0x21, 0x11, kIpv4Block + "\x04"), "TLV overflows"},
        Rejected{v2(0x21, 0x11, kIpv4Block + std::string("\x04\0", 2)), "TLV overflows"},
        Rejected{v2(0x21, 0x11, kIpv4Block + std::string("\x04\0\x02x", 4)), "TLV overflows"},
        Rejected{v2(0x21, 0x00, tlv(0x04, "") + "\x01"), "TLV overflows"},
        Rejected{v2(0x21, 0x11, kIpv4Block + tlv(0x03, "abc")), "CRC32C TLV is not 4 bytes"},
        Rejected{v2(0x21, 0x11, kIpv4Block + tlv(0x03, "abcde")), "CRC32C TLV is not 4 bytes"},
        Rejected{with_bad_crc(), "CRC32C mismatch"},
        Rejected{v2(0x20, 0x00, tlv(0x03, "abcd") + tlv(0x03, "abcd")), "more than one CRC32C"},
        Rejected{v2(0x21, 0x00, tlv(0x05, std::string(129, 'i'))), "UNIQUE_ID"},
        Rejected{v2(0x21, 0x00, tlv(0x20, "abcd")), "SSL TLV"},
        Rejected{v2(0x21, 0x00, tlv(0x20, std::string(5, '\0') + "\x21\0")), "TLV overflows"},
        Rejected{v2(0x21, 0x00, tlv(0x20, std::string(5, '\0') + std::string("\x21\0\x09v", 4))),
                 "TLV overflows"}));

TEST(ProxyV2, BadCrcIsFoundOnlyWhenComplete) {
  // A checksum can only be checked over the whole header.
  const std::string header = with_bad_crc();
  EXPECT_EQ(parse_text(header.substr(0, header.size() - 1)).status, Status::incomplete);
}

// ---------------------------------------------------------------------------

std::vector<std::string> valid_headers() {
  const std::string full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  std::vector<std::string> headers = {
      "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
      "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
      "PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n",
      "PROXY TCP6 2001:db8::1 ::1 1 65535\r\n",
      "PROXY TCP6 " + full + " " + full + " 65535 65535\r\n",
      "PROXY TCP6 ::ffff:192.0.2.1 1:2:3:4:5:6:7:: 10 20\r\n",
      "PROXY UNKNOWN\r\n",
      "PROXY UNKNOWN " + full + " " + full + " 65535 65535\r\n",
      v2(0x21, 0x11, kIpv4Block),
      v2(0x21, 0x21, std::string(36, '\x7F')),
      v2(0x20, 0x00, ""),
      v2(0x21, 0x31, std::string(216, 'u') + tlv(0x04, "")),
      v2(0x21, 0x12, kIpv4Block + tlv(0xEE, "x")),
      v2(0x21, 0x00, tlv(0x20, std::string(5, '\0') + tlv(0x22, "cn")) + tlv(0x02, "host")),
  };
  const auto crc = make_v2(Command::proxy, SocketAddress::parse("[::1]:1"),
                           SocketAddress::parse("[::2]:2"), {{0x05, "id"}}, true);
  headers.push_back(text_of(crc));
  return headers;
}

TEST(ProxyProperty, PrefixesOfValidHeadersWait) {
  for (const std::string& header : valid_headers()) {
    SCOPED_TRACE(header);
    expect_prefixes_wait(header);
    expect_prefixes_wait(header, "");
    // A payload that looks like another header is still payload.
    expect_prefixes_wait(header, header);
  }
}

TEST(ProxyProperty, RandomHeadersRoundTrip) {
  std::mt19937 generator(20240611);
  auto random_address = [&](bool v4) {
    sockaddr_in6 raw6{};
    sockaddr_in raw4{};
    if (v4) {
      raw4.sin_family = AF_INET;
      raw4.sin_addr.s_addr = generator();
      raw4.sin_port = static_cast<std::uint16_t>(generator());
      return *SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&raw4), sizeof raw4);
    }
    raw6.sin6_family = AF_INET6;
    for (auto& byte : raw6.sin6_addr.s6_addr)
      byte = static_cast<std::uint8_t>(generator() % 3);
    raw6.sin6_port = static_cast<std::uint16_t>(generator());
    return *SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&raw6), sizeof raw6);
  };
  for (int round = 0; round < 300; ++round) {
    const SocketAddress source = random_address(generator() % 2 == 0);
    const SocketAddress destination = random_address(generator() % 2 == 0);
    const std::string line = make_v1(source, destination);
    SCOPED_TRACE(line);
    expect_prefixes_wait(line);
    std::vector<Tlv> tlvs;
    for (unsigned i = generator() % 4; i > 0; --i) {
      tlvs.push_back({static_cast<std::uint8_t>(0xE0 + generator() % 16),
                      std::string(generator() % 40, static_cast<char>(generator()))});
    }
    const auto binary = make_v2(Command::proxy, source, destination, tlvs, generator() % 2 == 0);
    expect_prefixes_wait(text_of(binary));
    const ParseResult result = parse(binary);
    ASSERT_EQ(result.status, Status::complete) << result.error;
    if (source.family() == destination.family()) {
      EXPECT_EQ(*result.header.source, source);
      EXPECT_EQ(*result.header.destination, destination);
      EXPECT_EQ(*parse_text(line).header.source, source);
    }
  }
}

// ---------------------------------------------------------------------------

TEST(ProxyWriters, V1) {
  EXPECT_EQ(make_v1(SocketAddress::parse("192.0.2.1:56324"), SocketAddress::parse("10.0.0.1:443")),
            "PROXY TCP4 192.0.2.1 10.0.0.1 56324 443\r\n");
  EXPECT_EQ(make_v1(SocketAddress::parse("[2001:db8::1]:1"), SocketAddress::parse("[::1]:0")),
            "PROXY TCP6 2001:db8::1 ::1 1 0\r\n");
  EXPECT_EQ(make_v1_unknown(), "PROXY UNKNOWN\r\n");
}

TEST(ProxyWriters, V1MapsAMixedPair) {
  const std::string line =
      make_v1(SocketAddress::parse("192.0.2.1:1"), SocketAddress::parse("[2001:db8::1]:2"));
  EXPECT_EQ(line, "PROXY TCP6 ::ffff:192.0.2.1 2001:db8::1 1 2\r\n");
  const ParseResult result = parse_text(line);
  ASSERT_EQ(result.status, Status::complete) << result.error;
  EXPECT_EQ(result.header.source->to_string(), "[::ffff:192.0.2.1]:1");
}

TEST(ProxyWriters, V2Ipv4Bytes) {
  const auto header = make_v2(Command::proxy, SocketAddress::parse("192.0.2.1:12345"),
                              SocketAddress::parse("10.0.0.1:443"), {{0x01, "h2"}});
  EXPECT_EQ(text_of(header), v2(0x21, 0x11, kIpv4Block + tlv(0x01, "h2")));
}

TEST(ProxyWriters, V2LocalCarriesNoAddresses) {
  const auto header = make_v2(Command::local, SocketAddress::parse("192.0.2.1:1"),
                              SocketAddress::parse("10.0.0.1:2"));
  EXPECT_EQ(text_of(header), v2(0x20, 0x00, ""));
  const auto unspec = make_v2(Command::proxy, std::nullopt, std::nullopt);
  EXPECT_EQ(text_of(unspec), v2(0x21, 0x00, ""));
}

TEST(ProxyWriters, V2Crc32cIsTheLastTlv) {
  const auto header = make_v2(Command::local, std::nullopt, std::nullopt, {}, true);
  ASSERT_EQ(header.size(), 16u + 7u);
  EXPECT_EQ(std::to_integer<int>(header[16]), 0x03);
  const ParseResult result = parse(header);
  EXPECT_EQ(result.status, Status::complete) << result.error;
}

TEST(ProxyWriters, V2RefusesWhatTheFormatCannotCarry) {
  EXPECT_THROW(
      make_v2(Command::local, std::nullopt, std::nullopt, {{0xE0, std::string(65536, 'x')}}),
      std::length_error);
  EXPECT_THROW(make_v2(Command::local, std::nullopt, std::nullopt,
                       {{0xE0, std::string(40000, 'x')}, {0xE1, std::string(40000, 'x')}}),
               std::length_error);
}

}  // namespace
}  // namespace salam::proxy
