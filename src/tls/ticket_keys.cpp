#include "ticket_keys.hpp"

#include <atomic>
#include <chrono>
#include <cstring>

#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "server_context.hpp"

namespace salam::tls {

namespace {

std::atomic<std::uint64_t> next_generation{1};

// HMAC-SHA256(secret, label || hour).
std::array<unsigned char, 32> derive(const std::array<unsigned char, 32>& secret,
                                     std::string_view label, std::int64_t hour) {
  unsigned char message[24] = {};
  std::memcpy(message, label.data(), std::min<std::size_t>(label.size(), 16));
  for (int i = 0; i < 8; ++i)
    message[16 + i] = static_cast<unsigned char>(static_cast<std::uint64_t>(hour) >> (8 * i));
  std::array<unsigned char, 32> out{};
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), message, sizeof message,
           out.data(), &length) == nullptr) {
    throw std::bad_alloc();
  }
  return out;
}

const EVP_CIPHER* ticket_cipher() {
  static EVP_CIPHER* const cipher = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
  return cipher;
}

// Deriving costs three HMACs: each thread keeps the last two hours' keys.
struct CachedKey {
  std::uint64_t generation = 0;
  std::int64_t hour = 0;
  TicketKeys::Key key{};
};
thread_local CachedKey cache[2];

const TicketKeys::Key& cached_key(const TicketKeys& keys, std::uint64_t generation,
                                  std::int64_t hour) {
  CachedKey& slot = cache[hour & 1];
  if (slot.generation != generation || slot.hour != hour) {
    slot.key = keys.key_for(hour);
    slot.hour = hour;
    slot.generation = generation;
  }
  return slot.key;
}

bool init_mac(EVP_MAC_CTX* mac, const TicketKeys::Key& key) {
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
                                        const_cast<unsigned char*>(key.mac.data()), key.mac.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end()};
  return EVP_MAC_CTX_set_params(mac, params) == 1;
}

}  // namespace

std::shared_ptr<TicketKeys> make_ticket_keys() {
  return std::make_shared<TicketKeys>();
}

TicketKeys::TicketKeys() : generation_(next_generation.fetch_add(1)) {
  if (RAND_bytes(secret_.data(), static_cast<int>(secret_.size())) != 1) {
    throw Error("cannot draw a random secret for session tickets");
  }
}

TicketKeys::Key TicketKeys::key_for(std::int64_t hour) const {
  Key key{};
  const auto name = derive(secret_, "salam name", hour);
  std::memcpy(key.name.data(), name.data(), key.name.size());
  key.cipher = derive(secret_, "salam cipher", hour);
  key.mac = derive(secret_, "salam mac", hour);
  return key;
}

std::int64_t TicketKeys::current_hour() noexcept {
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  return seconds / kHour;
}

int TicketKeys::callback(SSL* ssl, unsigned char* key_name, unsigned char* iv,
                         EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int encrypt) {
  const auto* impl =
      static_cast<const ServerContext::Impl*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  if (impl == nullptr || ticket_cipher() == nullptr) return -1;
  const TicketKeys& keys = *impl->ticket_keys;
  const std::int64_t hour = current_hour();
  try {
    if (encrypt != 0) {
      const Key& key = cached_key(keys, keys.generation_, hour);
      std::memcpy(key_name, key.name.data(), key.name.size());
      if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(ticket_cipher())) != 1) return -1;
      if (EVP_EncryptInit_ex(cipher, ticket_cipher(), nullptr, key.cipher.data(), iv) != 1)
        return -1;
      return init_mac(mac, key) ? 1 : -1;
    }
    for (const std::int64_t candidate : {hour, hour - 1}) {
      const Key& key = cached_key(keys, keys.generation_, candidate);
      if (std::memcmp(key_name, key.name.data(), key.name.size()) != 0) continue;
      if (EVP_DecryptInit_ex(cipher, ticket_cipher(), nullptr, key.cipher.data(), iv) != 1)
        return -1;
      if (!init_mac(mac, key)) return -1;
      return candidate == hour ? 1 : 2;  // 2: valid, but issue a fresh ticket
    }
    return 0;  // unknown or too old: a full handshake
  } catch (const std::bad_alloc&) {
    return -1;
  }
}

}  // namespace salam::tls
