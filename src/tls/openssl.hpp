// Small owners for OpenSSL's objects, and its error text.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace salam::tls::detail {

template <auto Free>
struct Freer {
  template <typename T>
  void operator()(T* object) const noexcept {
    Free(object);
  }
};

using SslCtxPtr = std::unique_ptr<SSL_CTX, Freer<SSL_CTX_free>>;
using X509Ptr = std::unique_ptr<X509, Freer<X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Freer<EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Freer<BIO_free>>;
using CrlPtr = std::unique_ptr<X509_CRL, Freer<X509_CRL_free>>;

// The reason for the library's last failure (and clears its queue), such
// as "key values mismatch"; `fallback` if it gave none.
std::string last_error(std::string_view fallback);

// A read-only BIO over `text`, which must outlive it.
BioPtr memory_bio(std::string_view text);

}  // namespace salam::tls::detail
