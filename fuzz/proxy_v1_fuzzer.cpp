// Fuzzes the PROXY protocol v1 line. For any input:
// - the invariants of proxy_invariants.hpp (the answer does not depend on
//   how the bytes arrive; shapes of complete and invalid answers);
// - a complete v1 header is one CRLF-ended line of at most 107 bytes whose
//   address fields glibc's inet_pton reads to the same addresses, and
//   make_v1() of its addresses parses back to them;
// - an input that could be an address (no space, CR, LF or NUL) is tried
//   as the source of a TCP4 and a TCP6 line: accepted exactly when
//   inet_pton accepts it (glibc follows the same grammar: no leading zeros
//   in IPv4, IPv6 with an optional dotted tail, no zone);
// - the first 37 bytes, read as two addresses and ports, go through
//   make_v1() and must parse back.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <arpa/inet.h>

#include "proxy_invariants.hpp"

namespace salam::proxy::fuzzing {
namespace {

std::span<const std::byte> bytes_of(std::string_view text) {
  return std::as_bytes(std::span(text.data(), text.size()));
}

// The text of a field, NUL-terminated for inet_pton.
std::array<char, 128> c_string(std::string_view field) {
  std::array<char, 128> text{};
  std::memcpy(text.data(), field.data(), std::min(field.size(), text.size() - 1));
  return text;
}

bool same_ip(const SocketAddress& address, std::string_view field) {
  std::array<unsigned char, 16> expected{};
  const auto text = c_string(field);
  if (address.is_v4()) {
    const auto* raw = reinterpret_cast<const sockaddr_in*>(address.data());
    return ::inet_pton(AF_INET, text.data(), expected.data()) == 1 &&
           std::memcmp(expected.data(), &raw->sin_addr, 4) == 0;
  }
  const auto* raw = reinterpret_cast<const sockaddr_in6*>(address.data());
  return ::inet_pton(AF_INET6, text.data(), expected.data()) == 1 &&
         std::memcmp(expected.data(), &raw->sin6_addr, 16) == 0;
}

// Splits "PROXY TCPx SRC DST SPORT DPORT" into its six fields.
std::array<std::string_view, 6> fields_of(std::string_view line) {
  std::array<std::string_view, 6> fields{};
  for (std::string_view& field : fields) {
    const std::size_t space = line.find(' ');
    field = line.substr(0, space);
    line = space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
  }
  return fields;
}

void check_complete_line(std::string_view input, const ParseResult& result) {
  const Header& header = result.header;
  require(header.version == Version::v1 && header.command == Command::proxy, "v1 is PROXY");
  require(header.length <= kMaxV1Length, "v1 within 107 bytes");
  const std::string_view line = input.substr(0, header.length);
  require(line.ends_with("\r\n"), "v1 ends with CRLF");
  const std::string_view body = line.substr(0, line.size() - 2);
  require(body.find_first_of("\r\n") == std::string_view::npos, "one CRLF, at the end");
  if (body.starts_with("PROXY UNKNOWN")) {
    require(!header.source, "UNKNOWN has no addresses");
    return;
  }
  const auto fields = fields_of(body);
  require(header.source && header.destination, "TCP4 and TCP6 have addresses");
  require(header.source->is_v4() == (fields[1] == "TCP4"), "the family the line names");
  require(same_ip(*header.source, fields[2]), "inet_pton reads the same source");
  require(same_ip(*header.destination, fields[3]), "inet_pton reads the same destination");
  require(std::to_string(header.source->port()) == fields[4], "the same source port");
  require(std::to_string(header.destination->port()) == fields[5], "the same destination port");
  const std::string written = make_v1(*header.source, *header.destination);
  const ParseResult again = parse(bytes_of(written));
  require(again.status == Status::complete && again.header.length == written.size(),
          "make_v1 of parsed addresses parses");
  expect_pair(again, *header.source, *header.destination);
}

// The input as the source address of a line: accepted exactly when glibc
// accepts it.
void check_address_token(std::string_view token) {
  if (token.empty() || token.size() > 60) return;
  if (token.find_first_of(std::string_view(" \r\n\0", 4)) != std::string_view::npos) return;
  const auto text = c_string(token);
  std::array<unsigned char, 16> ip{};
  const bool v4 = ::inet_pton(AF_INET, text.data(), ip.data()) == 1;
  const bool v6 = ::inet_pton(AF_INET6, text.data(), ip.data()) == 1;
  const std::string tcp4 = "PROXY TCP4 " + std::string(token) + " 0.0.0.0 0 0\r\n";
  const std::string tcp6 = "PROXY TCP6 " + std::string(token) + " :: 0 0\r\n";
  const ParseResult as_v4 = check_parse(bytes_of(tcp4));
  const ParseResult as_v6 = check_parse(bytes_of(tcp6));
  require((as_v4.status == Status::complete) == v4, "TCP4 accepts what inet_pton accepts");
  require((as_v6.status == Status::complete) == v6, "TCP6 accepts what inet_pton accepts");
  if (v4) check_complete_line(tcp4, as_v4);
  if (v6) check_complete_line(tcp6, as_v6);
}

// make_v1() of addresses taken from the input's first 37 bytes.
void check_writer(const std::uint8_t* data, std::size_t size) {
  if (size < 37) return;
  const SocketAddress source = address_from(data + 1, (data[0] & 1) != 0, data + 33);
  const SocketAddress destination = address_from(data + 17, (data[0] & 2) != 0, data + 35);
  const std::string line = make_v1(source, destination);
  const ParseResult result = check_parse(bytes_of(line));
  require(result.status == Status::complete && result.header.length == line.size(),
          "make_v1 output parses whole");
  expect_pair(result, source, destination);
}

}  // namespace
}  // namespace salam::proxy::fuzzing

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace salam::proxy::fuzzing;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const salam::proxy::ParseResult result = check_parse(bytes_of(input));
  if (result.status == salam::proxy::Status::complete &&
      result.header.version == salam::proxy::Version::v1) {
    check_complete_line(input, result);
  }
  check_address_token(input);
  check_writer(data, size);
  return 0;
}
