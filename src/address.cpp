#include <charconv>
#include <cstring>
#include <stdexcept>

#include <arpa/inet.h>
#include <net/if.h>

#include <salam/address.hpp>
#include <salam/printable.hpp>

namespace salam {

namespace {

// Parses a decimal port: digits only, 0..65535.
std::optional<std::uint16_t> parse_port(std::string_view text, std::string_view* why) {
  if (text.empty()) {
    if (why) *why = "missing port after ':'";
    return std::nullopt;
  }
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      if (why) *why = "port is not a number";
      return std::nullopt;
    }
    value = value * 10 + static_cast<unsigned>(c - '0');
    if (value > 65535) {
      if (why) *why = "port out of range (0-65535)";
      return std::nullopt;
    }
  }
  return static_cast<std::uint16_t>(value);
}

}  // namespace

SocketAddress::SocketAddress() noexcept {
  std::memset(&storage_, 0, sizeof storage_);
  storage_.v4.sin_family = AF_INET;
}

std::optional<SocketAddress> SocketAddress::from_ip(std::string_view ip,
                                                    std::uint16_t port) noexcept {
  // inet_pton wants a terminated string; an IPv6 address with a zone fits
  // in INET6_ADDRSTRLEN + IF_NAMESIZE.
  char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  if (ip.empty() || ip.size() >= sizeof text) return std::nullopt;
  std::memcpy(text, ip.data(), ip.size());
  text[ip.size()] = '\0';

  SocketAddress address;
  if (::inet_pton(AF_INET, text, &address.storage_.v4.sin_addr) == 1) {
    address.storage_.v4.sin_family = AF_INET;
    address.storage_.v4.sin_port = htons(port);
    return address;
  }
  std::memset(&address.storage_, 0, sizeof address.storage_);
  char* zone = std::strchr(text, '%');
  unsigned scope = 0;
  if (zone != nullptr) {
    *zone++ = '\0';
    if (*zone == '\0') return std::nullopt;
    unsigned numeric = 0;
    auto [end, error] = std::from_chars(zone, zone + std::strlen(zone), numeric);
    scope = (error == std::errc{} && *end == '\0') ? numeric : ::if_nametoindex(zone);
    if (scope == 0) return std::nullopt;
  }
  if (::inet_pton(AF_INET6, text, &address.storage_.v6.sin6_addr) != 1) return std::nullopt;
  address.storage_.v6.sin6_family = AF_INET6;
  address.storage_.v6.sin6_port = htons(port);
  address.storage_.v6.sin6_scope_id = scope;
  return address;
}

std::optional<SocketAddress> SocketAddress::try_parse(std::string_view text,
                                                      std::string_view* why) noexcept {
  std::string_view ip;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) {
      if (why) *why = "missing ']' after IPv6 address";
      return std::nullopt;
    }
    ip = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') {
      if (why) *why = "expected ':PORT' after ']'";
      return std::nullopt;
    }
    port = rest.substr(1);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      if (why) *why = "expected ADDRESS:PORT";
      return std::nullopt;
    }
    ip = text.substr(0, colon);
    if (ip.find(':') != std::string_view::npos) {
      if (why) *why = "an IPv6 address must be in brackets, as in [::1]:8888";
      return std::nullopt;
    }
    port = text.substr(colon + 1);
  }
  auto port_number = parse_port(port, why);
  if (!port_number) return std::nullopt;
  if (ip.empty()) {
    if (why) *why = "missing address before ':'";
    return std::nullopt;
  }
  auto address = from_ip(ip, *port_number);
  const bool bracketed = text.front() == '[';
  if (address && bracketed && !address->is_v6()) address.reset();  // [1.2.3.4] is not IPv6
  if (!address && why) *why = "not an IPv4 or IPv6 address (host names are not resolved)";
  return address;
}

SocketAddress SocketAddress::parse(std::string_view text) {
  std::string_view why;
  auto address = try_parse(text, &why);
  if (!address) {
    throw std::invalid_argument("bad address '" + printable(text) + "': " + std::string(why));
  }
  return *address;
}

std::optional<SocketAddress> SocketAddress::from_sockaddr(const sockaddr* raw,
                                                          socklen_t length) noexcept {
  SocketAddress address;
  if (raw == nullptr) return std::nullopt;
  if (raw->sa_family == AF_INET && length >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    std::memcpy(&address.storage_.v4, raw, sizeof(sockaddr_in));
    return address;
  }
  if (raw->sa_family == AF_INET6 && length >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    std::memcpy(&address.storage_.v6, raw, sizeof(sockaddr_in6));
    return address;
  }
  return std::nullopt;
}

std::uint16_t SocketAddress::port() const noexcept {
  return ntohs(is_v4() ? storage_.v4.sin_port : storage_.v6.sin6_port);
}

void SocketAddress::set_port(std::uint16_t port) noexcept {
  if (is_v4()) {
    storage_.v4.sin_port = htons(port);
  } else {
    storage_.v6.sin6_port = htons(port);
  }
}

bool SocketAddress::is_unspecified() const noexcept {
  if (is_v4()) return storage_.v4.sin_addr.s_addr == htonl(INADDR_ANY);
  return IN6_IS_ADDR_UNSPECIFIED(&storage_.v6.sin6_addr);
}

SocketAddress SocketAddress::without_v4_mapping() const noexcept {
  if (!is_v6() || !IN6_IS_ADDR_V4MAPPED(&storage_.v6.sin6_addr)) return *this;
  SocketAddress v4;
  v4.storage_.v4.sin_family = AF_INET;
  v4.storage_.v4.sin_port = storage_.v6.sin6_port;
  std::memcpy(&v4.storage_.v4.sin_addr, &storage_.v6.sin6_addr.s6_addr[12], 4);
  return v4;
}

socklen_t SocketAddress::size() const noexcept {
  return is_v4() ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
}

std::string SocketAddress::ip_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (is_v4()) {
    ::inet_ntop(AF_INET, &storage_.v4.sin_addr, text, sizeof text);
  } else {
    ::inet_ntop(AF_INET6, &storage_.v6.sin6_addr, text, sizeof text);
  }
  return text;
}

std::string SocketAddress::to_string() const {
  fmt::memory_buffer out;
  format_address(out, *this);
  return fmt::to_string(out);
}

void format_address(fmt::memory_buffer& out, const SocketAddress& address) {
  char text[INET6_ADDRSTRLEN] = {};
  if (address.is_v4()) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(address.data());
    ::inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
    fmt::format_to(fmt::appender(out), "{}:{}", text, address.port());
  } else {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(address.data());
    ::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
    if (v6->sin6_scope_id != 0) {
      fmt::format_to(fmt::appender(out), "[{}%{}]:{}", text, v6->sin6_scope_id, address.port());
    } else {
      fmt::format_to(fmt::appender(out), "[{}]:{}", text, address.port());
    }
  }
}

bool operator==(const SocketAddress& a, const SocketAddress& b) noexcept {
  if (a.family() != b.family()) return false;
  if (a.is_v4()) {
    return a.storage_.v4.sin_port == b.storage_.v4.sin_port &&
           a.storage_.v4.sin_addr.s_addr == b.storage_.v4.sin_addr.s_addr;
  }
  return a.storage_.v6.sin6_port == b.storage_.v6.sin6_port &&
         a.storage_.v6.sin6_scope_id == b.storage_.v6.sin6_scope_id &&
         std::memcmp(&a.storage_.v6.sin6_addr, &b.storage_.v6.sin6_addr, 16) == 0;
}

}  // namespace salam
