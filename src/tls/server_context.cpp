#include "server_context.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include <salam/printable.hpp>

#include "ticket_keys.hpp"

namespace salam::tls {

namespace {

using namespace std::chrono_literals;
using detail::BioPtr;
using detail::KeyPtr;
using detail::SslCtxPtr;
using detail::X509Ptr;

constexpr auto kExpiryWarning = std::chrono::hours(24 * 14);
constexpr long kSessionTimeout = TicketKeys::kHour;

constexpr const char* kDefaultCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* kDefaultGroups = "X25519:P-256:P-384";
// AES-128 first: as strong as a 128-bit key exchange, and faster in bulk.
constexpr const char* kDefaultCiphersuites =
    "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384";

int refuse_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) {
  return -1;
}

std::vector<X509Ptr> read_certificates(const Pem& pem) {
  BioPtr bio = detail::memory_bio(pem.text);
  std::vector<X509Ptr> chain;
  while (X509* certificate = PEM_read_bio_X509(bio.get(), nullptr, refuse_passphrase, nullptr)) {
    chain.emplace_back(certificate);
  }
  const unsigned long error = ERR_peek_last_error();
  ERR_clear_error();
  // The loop ends at the end of the text (no start line) or at a damaged block.
  if (error != 0 && ERR_GET_REASON(error) != PEM_R_NO_START_LINE) {
    throw Error(fmt::format(
        "{}: cannot read a certificate: {}", pem.origin,
        ERR_reason_error_string(error) ? ERR_reason_error_string(error) : "damaged PEM"));
  }
  return chain;
}

KeyPtr read_key(const Pem& pem) {
  BioPtr bio = detail::memory_bio(pem.text);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, refuse_passphrase, nullptr));
  if (!key) {
    const std::string why = detail::last_error("no private key in it");
    throw Error(fmt::format("{}: cannot read the private key: {}{}", pem.origin, why,
                            pem.text.find("ENCRYPTED") != std::string::npos
                                ? " (encrypted keys are not supported: store it without a "
                                  "passphrase, readable only by salam)"
                                : ""));
  }
  return key;
}

std::chrono::system_clock::time_point to_time_point(const ASN1_TIME* time) {
  std::tm parts{};
  if (ASN1_TIME_to_tm(time, &parts) != 1) return {};
  return std::chrono::system_clock::from_time_t(timegm(&parts));
}

std::string date_of(std::chrono::system_clock::time_point when) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(when);
  std::tm parts{};
  gmtime_r(&seconds, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M UTC", &parts);
  return text;
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// The DNS names a certificate serves: its subjectAltName, or its common
// name if it has none.
std::vector<std::string> names_of(X509* certificate) {
  std::vector<std::string> names;
  auto* alt = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr));
  if (alt != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(alt); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(alt, i);
      if (name->type != GEN_DNS) continue;
      const ASN1_STRING* dns = name->d.dNSName;
      names.push_back(lower({reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                             static_cast<std::size_t>(ASN1_STRING_length(dns))}));
    }
    GENERAL_NAMES_free(alt);
    return names;
  }
  char common[256];
  const int length = X509_NAME_get_text_by_NID(X509_get_subject_name(certificate), NID_commonName,
                                               common, sizeof common);
  if (length > 0) names.push_back(lower({common, static_cast<std::size_t>(length)}));
  return names;
}

// The chain must run from the leaf up: each certificate issued by the next.
void check_chain(const std::vector<X509Ptr>& chain, const std::string& origin) {
  for (std::size_t i = 0; i + 1 < chain.size(); ++i) {
    if (X509_check_issued(chain[i + 1].get(), chain[i].get()) != X509_V_OK) {
      throw Error(fmt::format(
          "{}: the chain is out of order: certificate {} did not issue certificate {} (put the "
          "server's certificate first, then each issuer)",
          origin, i + 2, i + 1));
    }
  }
}

// Returns when the first certificate of the chain expires.
std::chrono::system_clock::time_point check_dates(const std::vector<X509Ptr>& chain,
                                                  const std::string& origin,
                                                  std::vector<std::string>& warnings) {
  const auto now = std::chrono::system_clock::now();
  auto earliest = std::chrono::system_clock::time_point::max();
  for (std::size_t i = 0; i < chain.size(); ++i) {
    const auto not_after = to_time_point(X509_get0_notAfter(chain[i].get()));
    earliest = std::min(earliest, not_after);
    const auto not_before = to_time_point(X509_get0_notBefore(chain[i].get()));
    const std::string which =
        i == 0 ? "the certificate" : fmt::format("chain certificate {}", i + 1);
    if (not_after <= now) {
      throw Error(fmt::format("{}: {} expired on {}", origin, which, date_of(not_after)));
    }
    if (not_before > now) {
      throw Error(fmt::format("{}: {} is not valid before {}", origin, which, date_of(not_before)));
    }
    if (not_after - now < kExpiryWarning) {
      warnings.push_back(fmt::format(
          "{}: {} expires on {}, in {} day(s)", origin, which, date_of(not_after),
          std::chrono::duration_cast<std::chrono::hours>(not_after - now).count() / 24));
    }
  }
  return earliest;
}

std::array<unsigned char, 32> digest_of(X509* certificate, const ServerSettings& settings) {
  // What a resumed session must have been made under: this certificate
  // and the same client verification.
  std::string material(64, '\0');
  unsigned int length = 0;
  X509_digest(certificate, EVP_sha256(), reinterpret_cast<unsigned char*>(material.data()),
              &length);
  material.resize(length);
  material += fmt::format("|verify={}|depth={}|", static_cast<int>(settings.client_verify),
                          settings.verify_depth);
  material += settings.client_ca.text;
  material += '|';
  material += settings.crl.text;
  std::array<unsigned char, 32> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(material.data()), material.size(), digest.data());
  return digest;
}

std::vector<unsigned char> alpn_wire(const std::vector<std::string>& protocols) {
  std::vector<unsigned char> wire;
  for (const auto& protocol : protocols) {
    if (protocol.empty() || protocol.size() > 255) {
      throw Error(fmt::format("bad ALPN protocol name '{}' (1 to 255 bytes)", printable(protocol)));
    }
    wire.push_back(static_cast<unsigned char>(protocol.size()));
    wire.insert(wire.end(), protocol.begin(), protocol.end());
  }
  return wire;
}

// --- callbacks; the context's app data is the Impl ---

const ServerContext::Impl& impl_of(SSL* ssl) {
  return *static_cast<const ServerContext::Impl*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
}

// The host name of a server_name extension (RFC 6066), or empty.
std::string requested_name(SSL* ssl) {
  const unsigned char* data = nullptr;
  std::size_t length = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &data, &length) != 1) return {};
  if (length < 5) return {};
  const std::size_t list = (std::size_t{data[0]} << 8) | data[1];
  if (list + 2 != length || data[2] != TLSEXT_NAMETYPE_host_name) return {};
  const std::size_t name = (std::size_t{data[3]} << 8) | data[4];
  if (name + 5 > length || name == 0 || name > 253) return {};
  std::string host = lower({reinterpret_cast<const char*>(data + 5), name});
  const bool valid = std::all_of(host.begin(), host.end(), [](unsigned char c) {
    return std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_';
  });
  return valid ? host : std::string();
}

int on_client_hello(SSL* ssl, int* alert, void* /*arg*/) {
  const ServerContext::Impl& impl = impl_of(ssl);
  detail::Stream* stream = detail::Stream::of(ssl);
  if (stream == nullptr) return SSL_CLIENT_HELLO_ERROR;
  try {
    std::string name = requested_name(ssl);
    int chosen = name.empty() ? -1 : impl.find(name);
    if (chosen < 0) {
      if (impl.sni == SniMode::strict) {
        *alert = SSL_AD_UNRECOGNIZED_NAME;
        return SSL_CLIENT_HELLO_ERROR;
      }
      chosen = 0;
    }
    if (chosen != 0) {
      SSL_CTX* context = impl.certificates[static_cast<std::size_t>(chosen)].context.get();
      if (SSL_set_SSL_CTX(ssl, context) != context) return SSL_CLIENT_HELLO_ERROR;
    }
    stream->binding = impl.binding(static_cast<std::size_t>(chosen), name);
    stream->server_name = std::move(name);
  } catch (const std::bad_alloc&) {
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_CLIENT_HELLO_ERROR;
  }
  return SSL_CLIENT_HELLO_SUCCESS;
}

int on_alpn(SSL* ssl, const unsigned char** out, unsigned char* out_length,
            const unsigned char* offered, unsigned int offered_length, void* /*arg*/) {
  const ServerContext::Impl& impl = impl_of(ssl);
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, out_length, impl.alpn.data(),
                            static_cast<unsigned int>(impl.alpn.size()), offered,
                            offered_length) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // no_application_protocol (RFC 7301)
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

int on_ticket_made(SSL* ssl, void* /*arg*/) {
  const detail::Stream* stream = detail::Stream::of(ssl);
  SSL_SESSION* session = SSL_get0_session(ssl);
  if (stream == nullptr || session == nullptr || stream->binding.empty()) return 0;
  return SSL_SESSION_set1_ticket_appdata(session, stream->binding.data(), stream->binding.size());
}

SSL_TICKET_RETURN on_ticket_opened(SSL* ssl, SSL_SESSION* session, const unsigned char* /*name*/,
                                   std::size_t /*name_length*/, SSL_TICKET_STATUS status,
                                   void* /*arg*/) {
  if (status != SSL_TICKET_SUCCESS && status != SSL_TICKET_SUCCESS_RENEW) {
    return status == SSL_TICKET_FATAL_ERR_MALLOC || status == SSL_TICKET_FATAL_ERR_OTHER
               ? SSL_TICKET_RETURN_ABORT
               : SSL_TICKET_RETURN_IGNORE_RENEW;
  }
  const detail::Stream* stream = detail::Stream::of(ssl);
  void* data = nullptr;
  std::size_t length = 0;
  if (stream == nullptr || SSL_SESSION_get0_ticket_appdata(session, &data, &length) != 1 ||
      length != stream->binding.size() || length == 0 ||
      std::memcmp(data, stream->binding.data(), length) != 0) {
    // Made for another certificate, name or verification: not here.
    return SSL_TICKET_RETURN_IGNORE_RENEW;
  }
  // A fresh ticket every time: TLS 1.3 clients should use each only once
  // (RFC 8446, C.4).
  return SSL_TICKET_RETURN_USE_RENEW;
}

void set_or_throw(int ok, std::string_view what, std::string_view value) {
  if (ok != 1) {
    throw Error(fmt::format("bad {} '{}': {}", what, printable(value),
                            detail::last_error("the library does not accept it")));
  }
}

void load_verification(SSL_CTX* context, const ServerSettings& settings) {
  if (settings.client_verify == ClientVerify::none) return;
  if (settings.client_ca.text.empty()) {
    throw Error("client certificate verification needs the CAs to trust (tls-client-ca)");
  }
  X509_STORE* store = SSL_CTX_get_cert_store(context);
  const auto authorities = read_certificates(settings.client_ca);
  if (authorities.empty())
    throw Error(fmt::format("{}: no certificate in it", settings.client_ca.origin));
  for (const auto& authority : authorities) {
    if (X509_STORE_add_cert(store, authority.get()) != 1 ||
        SSL_CTX_add_client_CA(context, authority.get()) != 1) {
      throw Error(
          fmt::format("{}: {}", settings.client_ca.origin, detail::last_error("cannot use it")));
    }
  }
  if (!settings.crl.text.empty()) {
    BioPtr bio = detail::memory_bio(settings.crl.text);
    int count = 0;
    while (X509_CRL* crl = PEM_read_bio_X509_CRL(bio.get(), nullptr, refuse_passphrase, nullptr)) {
      detail::CrlPtr owned(crl);
      if (X509_STORE_add_crl(store, crl) != 1) {
        throw Error(
            fmt::format("{}: {}", settings.crl.origin, detail::last_error("cannot use it")));
      }
      ++count;
    }
    const unsigned long error = ERR_peek_last_error();
    ERR_clear_error();
    if (count == 0 || (error != 0 && ERR_GET_REASON(error) != PEM_R_NO_START_LINE)) {
      throw Error(
          fmt::format("{}: cannot read a certificate revocation list", settings.crl.origin));
    }
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  }
  int mode = SSL_VERIFY_PEER;
  if (settings.client_verify == ClientVerify::required) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(context, mode, nullptr);
  SSL_CTX_set_verify_depth(context, settings.verify_depth);
}

SslCtxPtr make_context(const ServerSettings& settings, ServerContext::Impl& impl) {
  SslCtxPtr context(SSL_CTX_new(TLS_server_method()));
  if (!context) throw std::bad_alloc();
  SSL_CTX* c = context.get();
  SSL_CTX_set_app_data(c, &impl);
  SSL_CTX_set_min_proto_version(
      c, settings.min_version == Version::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_options(
      c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_clear_options(c, SSL_OP_NO_TICKET);
  // Idle connections give their record buffers back.
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
  // Stateless tickets only: nothing per session is kept on the server.
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_timeout(c, kSessionTimeout);
  SSL_CTX_set_num_tickets(c, 1);
  const std::string& ciphers = settings.ciphers.empty() ? kDefaultCiphers : settings.ciphers;
  set_or_throw(SSL_CTX_set_cipher_list(c, ciphers.c_str()), "TLS 1.2 cipher list", ciphers);
  const std::string& suites =
      settings.ciphersuites.empty() ? kDefaultCiphersuites : settings.ciphersuites;
  set_or_throw(SSL_CTX_set_ciphersuites(c, suites.c_str()), "TLS 1.3 ciphersuites", suites);
  const std::string& groups = settings.groups.empty() ? kDefaultGroups : settings.groups;
  set_or_throw(SSL_CTX_set1_groups_list(c, groups.c_str()), "TLS groups", groups);
  SSL_CTX_set_tlsext_ticket_key_evp_cb(c, &TicketKeys::callback);
  SSL_CTX_set_session_ticket_cb(c, &on_ticket_made, &on_ticket_opened, nullptr);
  SSL_CTX_set_client_hello_cb(c, &on_client_hello, nullptr);
  if (!impl.alpn.empty()) SSL_CTX_set_alpn_select_cb(c, &on_alpn, nullptr);
  load_verification(c, settings);
  return context;
}

ServerContext::Impl::Certificate load_certificate(const CertificateSource& source,
                                                  const ServerSettings& settings,
                                                  ServerContext::Impl& impl) {
  const std::string& origin = source.chain.origin;
  auto chain = read_certificates(source.chain);
  if (chain.empty()) throw Error(fmt::format("{}: no certificate in it", origin));
  KeyPtr key = read_key(source.key.text.empty() ? source.chain : source.key);
  check_chain(chain, origin);
  impl.expiries.push_back({origin, check_dates(chain, origin, impl.warnings)});

  ServerContext::Impl::Certificate certificate;
  certificate.context = make_context(settings, impl);
  SSL_CTX* c = certificate.context.get();
  if (SSL_CTX_use_certificate(c, chain.front().get()) != 1) {
    throw Error(fmt::format("{}: {}", origin, detail::last_error("cannot use the certificate")));
  }
  for (std::size_t i = 1; i < chain.size(); ++i) {
    if (SSL_CTX_add1_chain_cert(c, chain[i].get()) != 1) {
      throw Error(fmt::format("{}: {}", origin, detail::last_error("cannot use the chain")));
    }
  }
  const std::string& key_origin = source.key.text.empty() ? origin : source.key.origin;
  if (SSL_CTX_use_PrivateKey(c, key.get()) != 1 || SSL_CTX_check_private_key(c) != 1) {
    throw Error(fmt::format("{}: the private key does not match the certificate in {} ({})",
                            key_origin, origin, detail::last_error("mismatch")));
  }
  certificate.names = names_of(chain.front().get());
  if (certificate.names.empty()) {
    throw Error(
        fmt::format("{}: the certificate names no host (no DNS subjectAltName, no common "
                    "name)",
                    origin));
  }
  certificate.digest = digest_of(chain.front().get(), settings);
  SSL_CTX_set_session_id_context(c, certificate.digest.data(),
                                 static_cast<unsigned int>(certificate.digest.size()));
  return certificate;
}

}  // namespace

namespace detail {

std::string last_error(std::string_view fallback) {
  const unsigned long error = ERR_peek_last_error();
  ERR_clear_error();
  const char* reason = error != 0 ? ERR_reason_error_string(error) : nullptr;
  return reason != nullptr ? std::string(reason) : std::string(fallback);
}

BioPtr memory_bio(std::string_view text) {
  BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  if (!bio) throw std::bad_alloc();
  return bio;
}

}  // namespace detail

std::unique_ptr<detail::Stream> ServerContext::Impl::new_stream() const {
  detail::SslPtr ssl(SSL_new(certificates.front().context.get()));
  if (!ssl) return nullptr;
  return std::make_unique<detail::Stream>(std::move(ssl), true);
}

int ServerContext::Impl::find(std::string_view name) const noexcept {
  // Exact names first, then wildcards (one label: *.example.com).
  for (std::size_t i = 0; i < certificates.size(); ++i) {
    for (const auto& candidate : certificates[i].names) {
      if (candidate == name) return static_cast<int>(i);
    }
  }
  const auto dot = name.find('.');
  if (dot == std::string_view::npos || dot == 0) return -1;
  const std::string_view parent = name.substr(dot);  // ".example.com"
  for (std::size_t i = 0; i < certificates.size(); ++i) {
    for (const auto& candidate : certificates[i].names) {
      if (candidate.size() == parent.size() + 1 && candidate[0] == '*' &&
          std::string_view(candidate).substr(1) == parent) {
        return static_cast<int>(i);
      }
    }
  }
  return -1;
}

std::vector<unsigned char> ServerContext::Impl::binding(std::size_t certificate,
                                                        std::string_view name) const {
  std::vector<unsigned char> material(certificates[certificate].digest.begin(),
                                      certificates[certificate].digest.end());
  material.insert(material.end(), name.begin(), name.end());
  std::vector<unsigned char> digest(SHA256_DIGEST_LENGTH);
  SHA256(material.data(), material.size(), digest.data());
  return digest;
}

ServerContext::ServerContext(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
ServerContext::~ServerContext() = default;

std::shared_ptr<const ServerContext> ServerContext::create(const ServerSettings& settings,
                                                           std::shared_ptr<TicketKeys> keys) {
  if (settings.certificates.empty()) throw Error("TLS needs a certificate (tls-cert)");
  if (settings.verify_depth < 1 || settings.verify_depth > 16) {
    throw Error(
        fmt::format("verify depth must be between 1 and 16 (got {})", settings.verify_depth));
  }
  if (settings.client_verify == ClientVerify::none &&
      (!settings.client_ca.text.empty() || !settings.crl.text.empty())) {
    throw Error("tls-client-ca and tls-crl need tls-client-verify optional or required");
  }
  auto impl = std::make_unique<Impl>();
  impl->sni = settings.sni;
  impl->alpn = alpn_wire(settings.alpn);
  impl->ticket_keys = keys ? std::move(keys) : make_ticket_keys();
  for (const auto& source : settings.certificates) {
    impl->certificates.push_back(load_certificate(source, settings, *impl));
  }
  return std::shared_ptr<const ServerContext>(new ServerContext(std::move(impl)));
}

const std::vector<std::string>& ServerContext::warnings() const noexcept {
  return impl_->warnings;
}

const std::vector<ServerContext::Certificate>& ServerContext::certificates() const noexcept {
  return impl_->expiries;
}

}  // namespace salam::tls
