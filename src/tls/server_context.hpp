// ServerContext::Impl: one SSL_CTX per certificate, and what chooses
// among them.
//
// The first certificate's context makes every SSL; the ClientHello
// callback, which runs before any extension is processed, reads the name
// the client asks for, switches to that certificate's context and records
// the session binding: a digest of the certificate, the client-verification
// settings and the name. Tickets carry the binding (ticket app data), and a
// ticket whose binding differs from the connection's is ignored (a full
// handshake follows). Each context's session id context is its
// certificate's digest as well, which OpenSSL checks on its own.
#pragma once

#include <array>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <salam/tls.hpp>

#include "openssl.hpp"
#include "stream.hpp"

namespace salam::tls {

struct ServerContext::Impl {
  struct Certificate {
    detail::SslCtxPtr context;
    std::vector<std::string> names;          // lower case; "*.example.com" for wildcards
    std::array<unsigned char, 32> digest{};  // certificate and verification settings
  };

  std::vector<Certificate> certificates;
  SniMode sni = SniMode::default_certificate;
  std::vector<unsigned char> alpn;  // wire format: length-prefixed names
  std::shared_ptr<TicketKeys> ticket_keys;
  std::vector<std::string> warnings;
  std::vector<ServerContext::Certificate> expiries;  // one per certificate, in order

  // A new server-side stream, or null without memory.
  std::unique_ptr<detail::Stream> new_stream() const;
  // The certificate for `name`, or -1.
  int find(std::string_view name) const noexcept;
  std::vector<unsigned char> binding(std::size_t certificate, std::string_view name) const;
};

}  // namespace salam::tls
