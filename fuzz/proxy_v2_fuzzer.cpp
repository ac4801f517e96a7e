// Fuzzes the PROXY protocol v2 header. For any input:
// - the invariants of proxy_invariants.hpp (the answer does not depend on
//   how the bytes arrive; shapes of complete and invalid answers);
// - a complete v2 header is exactly 16 + its length field, parses the same
//   under any limit it fits, is refused as oversized under one it does not,
//   and make_v2() of its addresses parses back to them;
// - the input is also read as the arguments of make_v2() (flags,
//   addresses, ports, TLVs): the header written must parse back whole,
//   and break its CRC32C when one of its bytes changes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "proxy_invariants.hpp"

namespace salam::proxy::fuzzing {
namespace {

void check_limits(Bytes data, const ParseResult& result) {
  const std::size_t length = result.header.length;
  const ParseResult exact = parse(data, length);
  require(same_result(exact, result), "a header parses the same under a limit it fits");
  const ParseResult tight = parse(data, length - 1);
  require(tight.status == Status::invalid && tight.error.find("oversized") != std::string::npos,
          "a header longer than the limit is oversized");
}

void check_complete_header(Bytes data, const ParseResult& result) {
  const Header& header = result.header;
  require(header.length >= 16, "v2 has its 16 fixed bytes");
  const std::size_t announced =
      std::to_integer<std::size_t>(data[14]) << 8 | std::to_integer<std::size_t>(data[15]);
  require(header.length == 16 + announced, "v2 length is 16 + the length field");
  check_limits(data, result);
  if (!header.source) return;
  const auto written = make_v2(Command::proxy, header.source, header.destination);
  const ParseResult again = parse(written);
  require(again.status == Status::complete && again.header.length == written.size(),
          "make_v2 of parsed addresses parses");
  expect_pair(again, *header.source, *header.destination);
}

// The TLVs of the writer's input: type, one length byte, value. Types the
// parser checks (CRC32C, UNIQUE_ID, SSL) are moved aside, so every header
// written is valid.
std::vector<Tlv> tlvs_from(const std::uint8_t* data, std::size_t size) {
  std::vector<Tlv> tlvs;
  std::size_t at = 0;
  while (at + 2 <= size) {
    std::uint8_t type = data[at];
    if (type == 0x03 || type == 0x05 || type == 0x20) type = static_cast<std::uint8_t>(type ^ 0x80);
    const std::size_t length = std::min<std::size_t>(data[at + 1], size - at - 2);
    tlvs.push_back({type, std::string(reinterpret_cast<const char*>(data + at + 2), length)});
    at += 2 + length;
  }
  return tlvs;
}

// A header written with a checksum fails when any byte it covers changes;
// only bytes that do not change the header's shape are tried.
void check_checksum(std::vector<std::byte> header, std::size_t address_bytes, std::uint8_t pick) {
  std::vector<std::byte> broken = header;
  broken[broken.size() - 1 - pick % 4] ^= std::byte{0x01};
  require(parse(broken, 16 + 0xFFFF).error == "v2: CRC32C mismatch", "a changed CRC is found");
  if (address_bytes == 0) return;
  header[16 + pick % address_bytes] ^= std::byte{0x80};
  require(parse(header, 16 + 0xFFFF).error == "v2: CRC32C mismatch", "a changed address is found");
}

// Input: flags (bit 0: CRC32C, bit 1: LOCAL, bits 2-3: IPv4 pair, IPv6
// pair, mixed pair, no addresses), 16 + 16 address bytes, 2 + 2 port
// bytes, then TLVs.
void check_writer(const std::uint8_t* data, std::size_t size) {
  if (size < 37) return;
  const bool with_crc = (data[0] & 1) != 0;
  const Command command = (data[0] & 2) != 0 ? Command::local : Command::proxy;
  const int pair = (data[0] >> 2) & 3;
  const SocketAddress source = address_from(data + 1, pair == 1, data + 33);
  const SocketAddress destination = address_from(data + 17, pair != 0, data + 35);
  const std::optional<SocketAddress> from = pair == 3 ? std::nullopt : std::optional(source);
  const auto header =
      make_v2(command, from, destination, tlvs_from(data + 37, size - 37), with_crc);
  const ParseResult result = check_parse(header, 16 + 0xFFFF);
  require(result.status == Status::complete && result.header.length == header.size(),
          "make_v2 output parses whole");
  require(result.header.command == command, "the written command comes back");
  const bool has_addresses = command == Command::proxy && pair != 3;
  require(result.header.source.has_value() == has_addresses, "addresses only with PROXY");
  if (has_addresses) expect_pair(result, source, destination);
  const std::size_t address_bytes = !has_addresses ? 0 : pair == 0 ? 12 : 36;
  if (with_crc) check_checksum(header, address_bytes, data[1]);
}

}  // namespace
}  // namespace salam::proxy::fuzzing

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace salam::proxy::fuzzing;
  const auto input = std::as_bytes(std::span(data, size));
  const salam::proxy::ParseResult result = check_parse(input);
  if (result.status == salam::proxy::Status::complete &&
      result.header.version == salam::proxy::Version::v2) {
    check_complete_header(input, result);
  }
  check_writer(data, size);
  return 0;
}
