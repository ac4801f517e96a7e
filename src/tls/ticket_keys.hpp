// TicketKeys: the keys that encrypt session tickets, derived per hour from
// one random secret held in memory only.
//
// Deriving rather than storing keys means that nothing rotates them and
// nothing is shared but the secret: every shard computes the same key for
// the same hour, with no lock and no timer. A ticket made in hour N is
// accepted in hours N and N+1 (then renewed), so a ticket lives at least
// an hour and at most two; contexts set their session timeout to an hour.
#pragma once

#include <array>
#include <cstdint>

#include <openssl/evp.h>

#include <salam/tls.hpp>

namespace salam::tls {

class TicketKeys {
 public:
  static constexpr std::int64_t kHour = 3600;

  struct Key {
    std::array<unsigned char, 16> name;
    std::array<unsigned char, 32> cipher;  // AES-256-CBC
    std::array<unsigned char, 32> mac;     // HMAC-SHA256
  };

  TicketKeys();
  TicketKeys(const TicketKeys&) = delete;
  TicketKeys& operator=(const TicketKeys&) = delete;

  // The key of `hour` (seconds since the epoch / kHour).
  Key key_for(std::int64_t hour) const;
  static std::int64_t current_hour() noexcept;

  // OpenSSL's ticket key callback (SSL_CTX_set_tlsext_ticket_key_evp_cb);
  // the context's app data is its ServerContext::Impl.
  static int callback(SSL* ssl, unsigned char* key_name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                      EVP_MAC_CTX* mac, int encrypt);

 private:
  std::array<unsigned char, 32> secret_{};
  std::uint64_t generation_;  // tells the per-thread caches of two TicketKeys apart
};

}  // namespace salam::tls
