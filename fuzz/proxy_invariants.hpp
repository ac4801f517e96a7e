// What both PROXY protocol fuzzers check about any input, whatever the
// version: the properties the parser promises in its header, each broken
// one an abort() with a line saying which.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>

#include <netinet/in.h>

#include <salam/proxy_protocol.hpp>

// The sanitizers' allocator hooks: present in ASan builds (the fuzzers, the
// asan-ubsan replays), absent otherwise, hence weak.
extern "C" int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void*,
                                                                             std::size_t),
                                                         void (*free_hook)(const volatile void*))
    __attribute__((weak));

namespace salam::proxy::fuzzing {

using Bytes = std::span<const std::byte>;

inline void require(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "PROXY protocol invariant broken: %s\n", what);
  std::abort();
}

// parse() promises not to allocate: where the hooks exist, every
// allocation made while it runs is counted.
inline thread_local bool inside_parse = false;
inline thread_local std::size_t allocations_inside_parse = 0;

inline void count_allocation(const volatile void*, std::size_t) {
  if (inside_parse) ++allocations_inside_parse;
}
inline void ignore_free(const volatile void*) {}

// Installs the hooks on first use; says whether allocations are counted.
inline bool allocations_counted() {
  static const bool installed =
      __sanitizer_install_malloc_and_free_hooks != nullptr &&
      __sanitizer_install_malloc_and_free_hooks(count_allocation, ignore_free) != 0;
  return installed;
}

inline ParseResult parse_counted(Bytes data, std::size_t max_v2_length = kDefaultMaxV2Length) {
  inside_parse = allocations_counted();
  const ParseResult result = parse(data, max_v2_length);
  inside_parse = false;
  require(allocations_inside_parse == 0, "parse() allocated");
  return result;
}

inline bool same_address(const std::optional<SocketAddress>& a,
                         const std::optional<SocketAddress>& b) {
  return a.has_value() == b.has_value() && (!a || *a == *b);
}

inline bool same_result(const ParseResult& a, const ParseResult& b) {
  if (a.status != b.status || a.error != b.error) return false;
  if (a.status != Status::complete) return true;
  return a.header.version == b.header.version && a.header.command == b.header.command &&
         a.header.length == b.header.length && same_address(a.header.source, b.header.source) &&
         same_address(a.header.destination, b.header.destination);
}

// An IPv4 address as the IPv6 one a dual-stack socket would show, which is
// what the writers send for a mixed pair.
inline SocketAddress as_ipv6(const SocketAddress& address) {
  if (address.is_v6()) return address;
  const auto* v4 = reinterpret_cast<const sockaddr_in*>(address.data());
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  v6.sin6_port = v4->sin_port;
  v6.sin6_addr.s6_addr[10] = 0xFF;
  v6.sin6_addr.s6_addr[11] = 0xFF;
  std::memcpy(&v6.sin6_addr.s6_addr[12], &v4->sin_addr, 4);
  return *SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&v6), sizeof v6);
}

// The address pair a writer's header must parse back to.
inline void expect_pair(const ParseResult& result, const SocketAddress& source,
                        const SocketAddress& destination) {
  require(result.header.source && result.header.destination, "written addresses come back");
  const bool both_v4 = source.is_v4() && destination.is_v4();
  require(*result.header.source == (both_v4 ? source : as_ipv6(source)),
          "the written source comes back");
  require(*result.header.destination == (both_v4 ? destination : as_ipv6(destination)),
          "the written destination comes back");
}

// How the bytes arrive does not matter: while prefixes grow the answer is
// `incomplete`, then the first other answer is the one for the whole input
// and stays. Long inputs are sampled, plus the prefixes around the end of a
// complete header.
inline void check_arrival(Bytes data, const ParseResult& whole, std::size_t max_v2_length) {
  const std::size_t step = data.size() <= 1024 ? 1 : data.size() / 256;
  bool answered = false;
  auto check_prefix = [&](std::size_t k) {
    const ParseResult part = parse_counted(data.first(k), max_v2_length);
    if (part.status == Status::incomplete) {
      require(!answered, "a longer prefix went back to incomplete");
      return;
    }
    require(same_result(part, whole), "a prefix's answer differs from the whole input's");
    answered = true;
  };
  for (std::size_t k = 0; k < data.size(); k += step) {
    check_prefix(k);
  }
  check_prefix(data.size());
  require(answered || whole.status == Status::incomplete,
          "the whole input answered, no prefix did");
  if (whole.status != Status::complete) return;
  const std::size_t length = whole.header.length;
  require(parse(data.first(length - 1), max_v2_length).status == Status::incomplete,
          "a header less its last byte is incomplete");
  require(same_result(parse(data.first(length), max_v2_length), whole),
          "the header's bytes alone parse the same");
}

inline void check_result_shape(Bytes data, const ParseResult& result) {
  require((result.status == Status::invalid) == !result.error.empty(),
          "an error exactly when invalid");
  const Detection detection = detect(data);
  if (detection == Detection::not_header) {
    require(result.status == Status::invalid, "not a header by detect(), yet not invalid");
  }
  if (result.status != Status::complete) return;
  const Header& header = result.header;
  require(header.length > 0 && header.length <= data.size(), "length within the input");
  require(detection == Detection::header, "a complete header is detected as one");
  require(header.source.has_value() == header.destination.has_value(), "addresses in pairs");
  if (header.source) {
    require(header.source->family() == header.destination->family(), "one family per header");
    require(header.command == Command::proxy, "LOCAL carries no addresses");
  }
}

// Everything about one input that does not depend on the version; returns
// the answer for it.
inline ParseResult check_parse(Bytes data, std::size_t max_v2_length = kDefaultMaxV2Length) {
  const ParseResult whole = parse_counted(data, max_v2_length);
  check_result_shape(data, whole);
  check_arrival(data, whole, max_v2_length);
  return whole;
}

// Raw bytes as an address: 4 of them for IPv4 or 16 for IPv6, then 2 for
// the port.
inline SocketAddress address_from(const std::uint8_t* ip, bool v6, const std::uint8_t* port) {
  if (v6) {
    sockaddr_in6 raw{};
    raw.sin6_family = AF_INET6;
    std::memcpy(&raw.sin6_addr, ip, 16);
    std::memcpy(&raw.sin6_port, port, 2);
    return *SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&raw), sizeof raw);
  }
  sockaddr_in raw{};
  raw.sin_family = AF_INET;
  std::memcpy(&raw.sin_addr, ip, 4);
  std::memcpy(&raw.sin_port, port, 2);
  return *SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&raw), sizeof raw);
}

}  // namespace salam::proxy::fuzzing
