// The PROXY protocol parser and writers. docs/proxy-protocol.md says what is
// accepted, what is rejected and why.
//
// The parser keeps no state between calls: it reads the bytes received so
// far from the start, one at a time, and stops at the first byte no valid
// header could have there. So a header cut anywhere gives `incomplete`, and
// the answer for the whole input is the first answer that is not
// `incomplete` as the bytes arrive: the same reason, the same header.
#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>

#include <salam/proxy_protocol.hpp>

#include "proxy_text.hpp"

namespace salam::proxy {

namespace {

using detail::Ipv4Text;
using detail::Ipv6Text;
using detail::PortText;
using Bytes = std::span<const std::byte>;

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr std::array<std::uint8_t, 12> kV2Signature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                       0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::size_t kV2FixedLength = 16;

constexpr std::string_view kNotHeader = "not a PROXY protocol header";

std::uint8_t byte_at(Bytes data, std::size_t index) noexcept {
  return std::to_integer<std::uint8_t>(data[index]);
}

std::uint16_t big_endian16(Bytes data, std::size_t index) noexcept {
  return static_cast<std::uint16_t>(byte_at(data, index) << 8 | byte_at(data, index + 1));
}

ParseResult invalid(std::string_view why) noexcept {
  ParseResult result;
  result.status = Status::invalid;
  result.error = why;
  return result;
}

ParseResult complete(const Header& header) noexcept {
  ParseResult result;
  result.status = Status::complete;
  result.header = header;
  return result;
}

// Addresses are built from raw network-order bytes, the way both header
// versions carry them, so no text conversion or allocation is needed.
SocketAddress ipv4_address(const std::uint8_t* ip, const std::uint8_t* port) noexcept {
  sockaddr_in raw{};
  raw.sin_family = AF_INET;
  std::memcpy(&raw.sin_addr, ip, 4);
  std::memcpy(&raw.sin_port, port, 2);
  return *SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&raw), sizeof raw);
}

SocketAddress ipv6_address(const std::uint8_t* ip, const std::uint8_t* port) noexcept {
  sockaddr_in6 raw{};
  raw.sin6_family = AF_INET6;
  std::memcpy(&raw.sin6_addr, ip, 16);
  std::memcpy(&raw.sin6_port, port, 2);
  return *SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&raw), sizeof raw);
}

// ---------------------------------------------------------------------------
// Version 1: the text line. Its fields are read by the scanners of
// proxy_text.hpp.

constexpr std::string_view kV1TooLong = "v1: header too long (no CRLF within 107 bytes)";
constexpr std::string_view kV1LoneLf = "v1: LF without CR before it";
constexpr std::string_view kV1LoneCr = "v1: CR not followed by LF";
constexpr std::string_view kV1Protocol = "v1: unknown protocol (TCP4, TCP6 or UNKNOWN)";
constexpr std::string_view kV1EndsEarly = "v1: line ends before the destination port";
constexpr std::string_view kV1SourceAddress = "v1: bad source address";
constexpr std::string_view kV1DestinationAddress = "v1: bad destination address";
constexpr std::string_view kV1SourcePort = "v1: bad source port";
constexpr std::string_view kV1DestinationPort = "v1: bad destination port";
constexpr std::string_view kV1NoCrlf = "v1: expected CRLF after the destination port";

// The v1 line, a byte at a time: "PROXY", then the protocol, then for TCP4
// and TCP6 four fields, each after exactly one space, then CRLF.
class V1Line {
 public:
  // The next byte: an error, or nothing.
  std::string_view feed(char c) noexcept;
  bool complete() const noexcept { return state_ == State::complete; }
  // At least how many more bytes a valid line needs: a line that cannot
  // end within 107 bytes is refused without waiting for the rest.
  std::size_t bytes_still_needed() const noexcept;
  Header header(std::size_t length) const noexcept;

 private:
  enum class State : std::uint8_t {
    literal,
    protocol,
    unknown_rest,
    source_address,
    destination_address,
    source_port,
    destination_port,
    line_feed,
    complete
  };
  enum class Family : std::uint8_t { unknown, tcp4, tcp6 };

  std::string_view feed_literal(char c) noexcept;
  std::string_view feed_protocol(char c) noexcept;
  std::string_view end_protocol(char c) noexcept;
  std::string_view feed_address(char c, int which) noexcept;
  std::string_view feed_port(char c, int which) noexcept;
  std::string_view feed_unknown_rest(char c) noexcept;
  bool feed_address_char(char c, int which) noexcept;
  bool finish_address(int which) noexcept;

  State state_ = State::literal;
  Family family_ = Family::unknown;
  std::size_t matched_ = 0;  // bytes of "PROXY " or of the protocol name
  std::array<char, 7> protocol_{};
  std::array<Ipv4Text, 2> ipv4_{};
  std::array<Ipv6Text, 2> ipv6_{};
  std::array<PortText, 2> ports_{};
};

std::string_view V1Line::feed(char c) noexcept {
  if (state_ == State::literal) return feed_literal(c);
  if (c == '\n' && state_ != State::line_feed) return kV1LoneLf;
  switch (state_) {
    case State::protocol:
      return feed_protocol(c);
    case State::unknown_rest:
      return feed_unknown_rest(c);
    case State::source_address:
      return feed_address(c, 0);
    case State::destination_address:
      return feed_address(c, 1);
    case State::source_port:
      return feed_port(c, 0);
    case State::destination_port:
      return feed_port(c, 1);
    case State::line_feed:
      if (c != '\n') return kV1LoneCr;
      state_ = State::complete;
      return {};
    default:
      return kNotHeader;  // nothing is fed after the end
  }
}

std::string_view V1Line::feed_literal(char c) noexcept {
  if (c != kV1Prefix[matched_]) return kNotHeader;
  if (++matched_ == kV1Prefix.size()) {
    state_ = State::protocol;
    matched_ = 0;
  }
  return {};
}

std::string_view V1Line::feed_protocol(char c) noexcept {
  if (c == ' ' || c == '\r') return end_protocol(c);
  if (matched_ == protocol_.size()) return kV1Protocol;
  protocol_[matched_++] = c;
  const std::string_view so_far(protocol_.data(), matched_);
  for (std::string_view name : {"TCP4", "TCP6", "UNKNOWN"}) {
    if (name.starts_with(so_far)) return {};
  }
  return kV1Protocol;
}

std::string_view V1Line::end_protocol(char c) noexcept {
  const std::string_view name(protocol_.data(), matched_);
  if (name == "UNKNOWN") {
    // Whatever follows, up to CRLF, is ignored, as the specification says.
    state_ = c == ' ' ? State::unknown_rest : State::line_feed;
    return {};
  }
  if (name != "TCP4" && name != "TCP6") return kV1Protocol;
  if (c == '\r') return kV1EndsEarly;
  family_ = name == "TCP4" ? Family::tcp4 : Family::tcp6;
  state_ = State::source_address;
  return {};
}

std::string_view V1Line::feed_unknown_rest(char c) noexcept {
  if (c == '\r') state_ = State::line_feed;
  return {};
}

bool V1Line::feed_address_char(char c, int which) noexcept {
  const auto index = static_cast<std::size_t>(which);
  return family_ == Family::tcp4 ? ipv4_[index].feed(c) : ipv6_[index].feed(c);
}

bool V1Line::finish_address(int which) noexcept {
  const auto index = static_cast<std::size_t>(which);
  return family_ == Family::tcp4 ? ipv4_[index].finish() : ipv6_[index].finish();
}

std::string_view V1Line::feed_address(char c, int which) noexcept {
  const std::string_view bad = which == 0 ? kV1SourceAddress : kV1DestinationAddress;
  if (c == '\r') return kV1EndsEarly;
  if (c != ' ') return feed_address_char(c, which) ? std::string_view{} : bad;
  if (!finish_address(which)) return bad;
  state_ = which == 0 ? State::destination_address : State::source_port;
  return {};
}

std::string_view V1Line::feed_port(char c, int which) noexcept {
  const auto index = static_cast<std::size_t>(which);
  const std::string_view bad = which == 0 ? kV1SourcePort : kV1DestinationPort;
  const char end = which == 0 ? ' ' : '\r';
  if (c == end) {
    if (!ports_[index].finish()) return bad;
    state_ = which == 0 ? State::destination_port : State::line_feed;
    return {};
  }
  if (c == '\r') return ports_[index].finish() ? kV1EndsEarly : bad;
  if (c == ' ') return ports_[index].finish() ? kV1NoCrlf : bad;
  return ports_[index].feed(c) ? std::string_view{} : bad;
}

std::size_t V1Line::bytes_still_needed() const noexcept {
  // Counting the field being read as possibly finished, the shortest ends
  // are " 0.0.0.0" or " ::" for the destination address, then " 0 0\r\n".
  constexpr std::size_t kShortestPortsAndCrlf = 6;
  switch (state_) {
    case State::source_address:
      return (family_ == Family::tcp4 ? 8 : 3) + kShortestPortsAndCrlf;
    case State::destination_address:
      return kShortestPortsAndCrlf;
    case State::source_port:
      return 4;  // " 0\r\n"
    case State::destination_port:
    case State::unknown_rest:
    case State::protocol:
    case State::literal:
      return 2;
    case State::line_feed:
      return 1;
    case State::complete:
      return 0;
  }
  return 0;
}

Header V1Line::header(std::size_t length) const noexcept {
  Header header;
  header.version = Version::v1;
  header.command = Command::proxy;
  header.length = length;
  if (family_ == Family::unknown) return header;
  const auto source_port = ports_[0].bytes();
  const auto destination_port = ports_[1].bytes();
  if (family_ == Family::tcp4) {
    header.source = ipv4_address(ipv4_[0].bytes(), source_port.data());
    header.destination = ipv4_address(ipv4_[1].bytes(), destination_port.data());
  } else {
    header.source = ipv6_address(ipv6_[0].bytes(), source_port.data());
    header.destination = ipv6_address(ipv6_[1].bytes(), destination_port.data());
  }
  return header;
}

ParseResult parse_v1(Bytes data) noexcept {
  V1Line line;
  for (std::size_t i = 0; i < data.size(); ++i) {
    const std::string_view error = line.feed(static_cast<char>(byte_at(data, i)));
    if (!error.empty()) return invalid(error);
    if (line.complete()) return complete(line.header(i + 1));
    if (i + 1 + line.bytes_still_needed() > kMaxV1Length) return invalid(kV1TooLong);
  }
  return {};
}

// ---------------------------------------------------------------------------
// Version 2: the binary header.

constexpr std::uint8_t kTlvCrc32c = 0x03;
constexpr std::uint8_t kTlvUniqueId = 0x05;
constexpr std::uint8_t kTlvSsl = 0x20;
constexpr std::size_t kMaxUniqueId = 128;
constexpr std::size_t kSslFixedPart = 5;  // client flags (1) and verify (4)

constexpr std::string_view kV2Version = "v2: unsupported version (only 2 exists)";
constexpr std::string_view kV2Command = "v2: unknown command (only LOCAL and PROXY exist)";
constexpr std::string_view kV2Family = "v2: unknown address family or transport";
constexpr std::string_view kV2Oversized = "v2: header oversized (longer than the maximum allowed)";
constexpr std::string_view kV2AddressBlock = "v2: address block longer than the announced length";
constexpr std::string_view kV2TlvOverflow = "v2: TLV overflows the announced length";
constexpr std::string_view kV2CrcLength = "v2: CRC32C TLV is not 4 bytes";
constexpr std::string_view kV2CrcTwice = "v2: more than one CRC32C TLV";
constexpr std::string_view kV2CrcMismatch = "v2: CRC32C mismatch";
constexpr std::string_view kV2UniqueId = "v2: UNIQUE_ID TLV longer than 128 bytes";
constexpr std::string_view kV2Ssl = "v2: SSL TLV shorter than its 5 fixed bytes";

// The bytes of the address block for each family and transport byte, or
// -1 for the values the specification tells receivers to reject.
int address_block_size(std::uint8_t family) noexcept {
  switch (family) {
    case 0x00:
      return 0;  // UNSPEC
    case 0x11:   // TCP over IPv4
    case 0x12:   // UDP over IPv4
      return 12;
    case 0x21:  // TCP over IPv6
    case 0x22:  // UDP over IPv6
      return 36;
    case 0x31:  // UNIX stream
    case 0x32:  // UNIX datagram
      return 216;
    default:
      return -1;
  }
}

// A run of TLVs that must fill `announced` bytes exactly, of which only
// those received so far are in `data`. Walks what is there and stops at the
// first TLV that cannot fit: a TLV is known to be wrong once its 3-byte
// head is in, so a header cut anywhere before that stays incomplete.
struct TlvWalk {
  Bytes data;             // the header as received so far
  std::size_t start;      // where the run begins in it
  std::size_t announced;  // the run's size by the lengths read so far
  bool nested;            // inside the SSL TLV: no CRC32C, no deeper SSL
  std::size_t* crc_offset;
};

std::string_view walk_tlvs(const TlvWalk& walk) noexcept;

std::string_view check_tlv(const TlvWalk& walk, std::size_t at, std::uint8_t type,
                           std::size_t length) noexcept {
  if (walk.nested) return {};
  if (type == kTlvCrc32c) {
    if (length != 4) return kV2CrcLength;
    if (*walk.crc_offset != 0) return kV2CrcTwice;
    *walk.crc_offset = at + 3;
  }
  if (type == kTlvUniqueId && length > kMaxUniqueId) return kV2UniqueId;
  if (type == kTlvSsl) {
    // Its sub-TLVs follow the fixed part and must fill the value exactly.
    if (length < kSslFixedPart) return kV2Ssl;
    const TlvWalk inner{walk.data, at + 3 + kSslFixedPart, length - kSslFixedPart, true,
                        walk.crc_offset};
    return walk_tlvs(inner);
  }
  return {};
}

std::string_view walk_tlvs(const TlvWalk& walk) noexcept {
  std::size_t offset = 0;
  while (offset < walk.announced) {
    const std::size_t at = walk.start + offset;
    if (walk.announced - offset < 3) return kV2TlvOverflow;
    if (walk.data.size() < at + 3) return {};
    const std::size_t length = big_endian16(walk.data, at + 1);
    if (length > walk.announced - offset - 3) return kV2TlvOverflow;
    const std::string_view error = check_tlv(walk, at, byte_at(walk.data, at), length);
    if (!error.empty()) return error;
    offset += 3 + length;
  }
  return {};
}

// The CRC-32C of the header with the 4 bytes of the checksum taken as zeros.
bool crc32c_matches(Bytes header, std::size_t crc_offset) noexcept {
  constexpr std::array<std::byte, 4> kZeros{};
  std::uint32_t crc = crc32c(header.first(crc_offset));
  crc = crc32c(kZeros, crc);
  crc = crc32c(header.subspan(crc_offset + 4), crc);
  const std::uint32_t sent = static_cast<std::uint32_t>(big_endian16(header, crc_offset)) << 16 |
                             big_endian16(header, crc_offset + 2);
  return crc == sent;
}

// The first 16 bytes, checked as far as they are there: the signature, the
// version and command, the family, then the length against the limits.
// Sets `total` once the length is in.
std::string_view check_v2_fixed_part(Bytes data, std::size_t max_v2_length,
                                     std::size_t& total) noexcept {
  for (std::size_t i = 0; i < kV2Signature.size() && i < data.size(); ++i) {
    if (byte_at(data, i) != kV2Signature[i]) return kNotHeader;
  }
  if (data.size() <= 12) return {};
  if (byte_at(data, 12) >> 4 != 2) return kV2Version;
  if ((byte_at(data, 12) & 0x0F) > 1) return kV2Command;
  if (data.size() <= 13) return {};
  const int block = address_block_size(byte_at(data, 13));
  if (block < 0) return kV2Family;
  if (data.size() < kV2FixedLength) return {};
  const std::size_t announced = big_endian16(data, 14);
  if (kV2FixedLength + announced > max_v2_length) return kV2Oversized;
  if (static_cast<std::size_t>(block) > announced) return kV2AddressBlock;
  total = kV2FixedLength + announced;
  return {};
}

Header v2_header(Bytes data, std::size_t total) noexcept {
  Header header;
  header.version = Version::v2;
  header.command = (byte_at(data, 12) & 0x0F) == 1 ? Command::proxy : Command::local;
  header.length = total;
  // LOCAL: the receiver keeps the real connection's addresses. UDP, UNIX
  // and UNSPEC fall back to the same, as the specification allows.
  if (header.command == Command::local) return header;
  std::array<std::uint8_t, 36> block{};
  const std::uint8_t family = byte_at(data, 13);
  if (family == 0x11) {
    std::memcpy(block.data(), &data[16], 12);
    header.source = ipv4_address(&block[0], &block[8]);
    header.destination = ipv4_address(&block[4], &block[10]);
  } else if (family == 0x21) {
    std::memcpy(block.data(), &data[16], 36);
    header.source = ipv6_address(&block[0], &block[32]);
    header.destination = ipv6_address(&block[16], &block[34]);
  }
  return header;
}

ParseResult parse_v2(Bytes data, std::size_t max_v2_length) noexcept {
  std::size_t total = 0;
  std::string_view error = check_v2_fixed_part(data, max_v2_length, total);
  if (!error.empty()) return invalid(error);
  if (total == 0) return {};
  const auto block = static_cast<std::size_t>(address_block_size(byte_at(data, 13)));
  const Bytes header_bytes = data.first(std::min(data.size(), total));
  std::size_t crc_offset = 0;  // of the CRC32C value; 0 when there is none
  const TlvWalk tlvs{header_bytes, kV2FixedLength + block, total - kV2FixedLength - block, false,
                     &crc_offset};
  error = walk_tlvs(tlvs);
  if (!error.empty()) return invalid(error);
  if (data.size() < total) return {};
  if (crc_offset != 0 && !crc32c_matches(header_bytes, crc_offset)) {
    return invalid(kV2CrcMismatch);
  }
  return complete(v2_header(data, total));
}

bool starts_like(Bytes data, const std::uint8_t* expected, std::size_t size) noexcept {
  for (std::size_t i = 0; i < size && i < data.size(); ++i) {
    if (byte_at(data, i) != expected[i]) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// Writers.

// v1 has one family for both addresses: a mixed pair goes out as TCP6 with
// the IPv4 one mapped (::ffff:a.b.c.d), which is how a dual-stack socket
// would have seen it. A zone is dropped: the text has no room for it.
std::string v1_address_text(const SocketAddress& address, bool both_v4) {
  if (both_v4 || address.is_v6()) return address.ip_string();
  return "::ffff:" + address.ip_string();
}

void append(std::vector<std::byte>& out, std::uint8_t value) {
  out.push_back(static_cast<std::byte>(value));
}

void append16(std::vector<std::byte>& out, std::size_t value) {
  append(out, static_cast<std::uint8_t>(value >> 8));
  append(out, static_cast<std::uint8_t>(value & 0xFF));
}

// The 16 bytes of an IPv6 address, an IPv4 one mapped, and its port in
// network order.
void ipv6_bytes(const SocketAddress& address, std::uint8_t* ip, std::uint8_t* port) {
  if (address.is_v6()) {
    const auto* raw = reinterpret_cast<const sockaddr_in6*>(address.data());
    std::memcpy(ip, &raw->sin6_addr, 16);
    std::memcpy(port, &raw->sin6_port, 2);
    return;
  }
  const auto* raw = reinterpret_cast<const sockaddr_in*>(address.data());
  std::memset(ip, 0, 10);
  ip[10] = 0xFF;
  ip[11] = 0xFF;
  std::memcpy(ip + 12, &raw->sin_addr, 4);
  std::memcpy(port, &raw->sin_port, 2);
}

void append_v4_block(std::vector<std::byte>& out, const SocketAddress& source,
                     const SocketAddress& destination) {
  const auto* from = reinterpret_cast<const sockaddr_in*>(source.data());
  const auto* to = reinterpret_cast<const sockaddr_in*>(destination.data());
  std::array<std::uint8_t, 12> block{};
  std::memcpy(&block[0], &from->sin_addr, 4);
  std::memcpy(&block[4], &to->sin_addr, 4);
  std::memcpy(&block[8], &from->sin_port, 2);
  std::memcpy(&block[10], &to->sin_port, 2);
  for (std::uint8_t value : block)
    append(out, value);
}

void append_v6_block(std::vector<std::byte>& out, const SocketAddress& source,
                     const SocketAddress& destination) {
  std::array<std::uint8_t, 36> block{};
  ipv6_bytes(source, &block[0], &block[32]);
  ipv6_bytes(destination, &block[16], &block[34]);
  for (std::uint8_t value : block)
    append(out, value);
}

// The family byte and address block. LOCAL carries none: the specification
// says a sender should not present addresses with it.
void append_addresses(std::vector<std::byte>& out, Command command,
                      const std::optional<SocketAddress>& source,
                      const std::optional<SocketAddress>& destination) {
  if (command == Command::local || !source || !destination) {
    append(out, 0x00);
    append16(out, 0);
    return;
  }
  const bool both_v4 = source->is_v4() && destination->is_v4();
  append(out, both_v4 ? 0x11 : 0x21);
  append16(out, 0);  // the length, filled in at the end
  if (both_v4) {
    append_v4_block(out, *source, *destination);
  } else {
    append_v6_block(out, *source, *destination);
  }
}

void append_tlv(std::vector<std::byte>& out, std::uint8_t type, std::string_view value) {
  if (value.size() > 0xFFFF) throw std::length_error("PROXY v2 TLV value longer than 65535 bytes");
  append(out, type);
  append16(out, value.size());
  for (char c : value)
    append(out, static_cast<std::uint8_t>(c));
}

void put32(std::vector<std::byte>& out, std::size_t at, std::uint32_t value) {
  for (std::size_t i = 0; i < 4; ++i) {
    out[at + i] = static_cast<std::byte>(value >> (24 - 8 * i));
  }
}

// The CRC-32C table for the reflected Castagnoli polynomial, built at
// compile time: entry i is the CRC of the byte i alone.
constexpr std::array<std::uint32_t, 256> make_crc32c_table() noexcept {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit)
      crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    table[i] = crc;
  }
  return table;
}

constexpr std::array<std::uint32_t, 256> kCrc32cTable = make_crc32c_table();

}  // namespace

ParseResult parse(std::span<const std::byte> data, std::size_t max_v2_length) noexcept {
  if (data.empty()) return {};
  // The first byte tells the versions apart: 'P' for v1, CR for v2.
  if (byte_at(data, 0) == kV2Signature[0]) return parse_v2(data, max_v2_length);
  return parse_v1(data);
}

Detection detect(std::span<const std::byte> data) noexcept {
  const auto* v1 = reinterpret_cast<const std::uint8_t*>(kV1Prefix.data());
  const bool like_v1 = starts_like(data, v1, kV1Prefix.size());
  const bool like_v2 = starts_like(data, kV2Signature.data(), kV2Signature.size());
  if ((like_v1 && data.size() >= kV1Prefix.size()) ||
      (like_v2 && data.size() >= kV2Signature.size())) {
    return Detection::header;
  }
  return like_v1 || like_v2 ? Detection::need_more : Detection::not_header;
}

std::string make_v1(const SocketAddress& source, const SocketAddress& destination) {
  const bool both_v4 = source.is_v4() && destination.is_v4();
  std::string line = both_v4 ? "PROXY TCP4 " : "PROXY TCP6 ";
  line += v1_address_text(source, both_v4);
  line += ' ';
  line += v1_address_text(destination, both_v4);
  line += ' ';
  line += std::to_string(source.port());
  line += ' ';
  line += std::to_string(destination.port());
  line += "\r\n";
  return line;
}

std::string make_v1_unknown() {
  return "PROXY UNKNOWN\r\n";
}

std::vector<std::byte> make_v2(Command command, const std::optional<SocketAddress>& source,
                               const std::optional<SocketAddress>& destination,
                               const std::vector<Tlv>& tlvs, bool with_crc32c) {
  std::vector<std::byte> out;
  for (std::uint8_t value : kV2Signature)
    append(out, value);
  append(out, command == Command::local ? 0x20 : 0x21);
  append_addresses(out, command, source, destination);
  for (const Tlv& tlv : tlvs)
    append_tlv(out, tlv.type, tlv.value);
  // The checksum goes last, written as zeros, and is computed once the
  // length field holds its final value: it covers the whole header.
  const std::size_t crc_offset = out.size() + 3;
  if (with_crc32c) append_tlv(out, kTlvCrc32c, std::string_view("\0\0\0\0", 4));
  const std::size_t announced = out.size() - kV2FixedLength;
  if (announced > 0xFFFF) throw std::length_error("PROXY v2 header longer than 16 + 65535 bytes");
  out[14] = static_cast<std::byte>(announced >> 8);
  out[15] = static_cast<std::byte>(announced & 0xFF);
  if (with_crc32c) put32(out, crc_offset, crc32c(out));
  return out;
}

std::uint32_t crc32c(std::span<const std::byte> data, std::uint32_t crc) noexcept {
  // Pre- and post-inverted, so that crc32c(b, crc32c(a)) == crc32c(a + b).
  std::uint32_t state = ~crc;
  for (std::byte value : data) {
    state = kCrc32cTable[(state ^ std::to_integer<std::uint32_t>(value)) & 0xFF] ^ (state >> 8);
  }
  return ~state;
}

}  // namespace salam::proxy
