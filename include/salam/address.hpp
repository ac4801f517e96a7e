// SocketAddress: an IPv4 or IPv6 address with a port, as the kernel takes
// it. Small (28 bytes) and trivially copyable, so connections can keep
// their peer's address.
//
// Text forms: `127.0.0.1:8888`, `[::1]:8888`, `[fe80::1%eth0]:8888`.
// Parsing is strict: no host names, no missing or out-of-range port, no
// stray characters; the error says which part is wrong.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace salam {

class SocketAddress {
 public:
  SocketAddress() noexcept;

  // Throws std::invalid_argument with a message naming the problem.
  static SocketAddress parse(std::string_view text);
  // As parse(), without exceptions: on failure returns nothing and, if
  // `why` is given, sets it to the reason.
  static std::optional<SocketAddress> try_parse(std::string_view text,
                                                std::string_view* why = nullptr) noexcept;
  // An address and port given apart (`::1`, 8888).
  static std::optional<SocketAddress> from_ip(std::string_view ip, std::uint16_t port) noexcept;
  // From what the kernel returned (accept, getpeername); AF_INET or AF_INET6.
  static std::optional<SocketAddress> from_sockaddr(const sockaddr* address,
                                                    socklen_t length) noexcept;

  int family() const noexcept { return storage_.any.sa_family; }
  bool is_v4() const noexcept { return family() == AF_INET; }
  bool is_v6() const noexcept { return family() == AF_INET6; }
  std::uint16_t port() const noexcept;
  void set_port(std::uint16_t port) noexcept;
  // True for 0.0.0.0 and ::.
  bool is_unspecified() const noexcept;
  // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address it
  // is; any other address unchanged.
  SocketAddress without_v4_mapping() const noexcept;

  const sockaddr* data() const noexcept { return &storage_.any; }
  sockaddr* data() noexcept { return &storage_.any; }
  socklen_t size() const noexcept;

  // `127.0.0.1:8888` or `[::1]:8888`.
  std::string to_string() const;
  // The address alone: `127.0.0.1` or `::1`.
  std::string ip_string() const;

  friend bool operator==(const SocketAddress& a, const SocketAddress& b) noexcept;

 private:
  union Storage {
    sockaddr any;
    sockaddr_in v4;
    sockaddr_in6 v6;
  } storage_;
};

// Appends `127.0.0.1:8888` or `[::1]:8888` to `out` without allocating.
void format_address(fmt::memory_buffer& out, const SocketAddress& address);

}  // namespace salam

template <>
struct fmt::formatter<salam::SocketAddress> : fmt::formatter<std::string_view> {
  template <typename Context>
  auto format(const salam::SocketAddress& address, Context& context) const {
    fmt::memory_buffer text;
    salam::format_address(text, address);
    return fmt::formatter<std::string_view>::format(std::string_view(text.data(), text.size()),
                                                    context);
  }
};
