// The PROXY protocol (versions 1 and 2), as specified by HAProxy in
// doc/proxy-protocol.txt: a load balancer tells the server who the client
// really is by sending a header before the client's bytes.
//
// The parser is strict: anything the specification does not allow is
// rejected, with a reason. It is incremental in the simplest way: given the
// bytes received so far, it says `incomplete` until a whole header is
// there, so a header arriving one byte at a time parses exactly like one
// arriving at once. It never reads past the header: the caller passes the
// bytes after `header.length` on to the service.
//
// Threading: pure functions, thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <salam/address.hpp>

namespace salam::proxy {

enum class Version : std::uint8_t { v1, v2 };
// v2's LOCAL (the balancer's own health check: keep the real peer) or
// PROXY (relayed for a client). A v1 header is always PROXY.
enum class Command : std::uint8_t { local, proxy };

struct Header {
  Version version = Version::v1;
  Command command = Command::proxy;
  // The client and the address it connected to. Empty when the header
  // carries no usable address (v1 UNKNOWN, v2 LOCAL, UNSPEC or UNIX).
  std::optional<SocketAddress> source;
  std::optional<SocketAddress> destination;
  // Bytes the header takes at the start of the stream.
  std::size_t length = 0;
};

enum class Status : std::uint8_t { incomplete, complete, invalid };

struct ParseResult {
  Status status = Status::incomplete;
  Header header;           // valid when complete
  std::string_view error;  // why, when invalid (a static string)
};

// The largest header accepted: a v1 line is at most 107 bytes by the
// specification; a v2 header may announce up to 16 + 65535 bytes, and
// salam refuses more than this (TLVs beyond it are not worth the memory a
// client could make the server hold).
inline constexpr std::size_t kMaxV1Length = 107;
inline constexpr std::size_t kDefaultMaxV2Length = 16 + 4096;

// Parses a header at the start of `data` (the bytes received so far).
ParseResult parse(std::span<const std::byte> data,
                  std::size_t max_v2_length = kDefaultMaxV2Length) noexcept;

// For listeners that accept a header or none: whether `data` starts like a
// header, starts like something else, or is too short to tell.
enum class Detection : std::uint8_t { header, not_header, need_more };
Detection detect(std::span<const std::byte> data) noexcept;

// Header writers, for salam-bench and tests.
std::string make_v1(const SocketAddress& source, const SocketAddress& destination);
std::string make_v1_unknown();
struct Tlv {
  std::uint8_t type;
  std::string value;
};
std::vector<std::byte> make_v2(Command command, const std::optional<SocketAddress>& source,
                               const std::optional<SocketAddress>& destination,
                               const std::vector<Tlv>& tlvs = {}, bool with_crc32c = false);

// CRC-32C (Castagnoli), as v2's PP2_TYPE_CRC32C uses it.
std::uint32_t crc32c(std::span<const std::byte> data, std::uint32_t crc = 0) noexcept;

}  // namespace salam::proxy
