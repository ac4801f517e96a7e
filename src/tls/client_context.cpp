#include "client_context.hpp"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/pem.h>

namespace salam::tls {

namespace {

int on_new_session(SSL* ssl, SSL_SESSION* session) {
  detail::Stream* stream = detail::Stream::of(ssl);
  if (stream == nullptr) return 0;
  try {
    stream->saved = std::make_shared<const SavedSession>(session);
  } catch (const std::bad_alloc&) {
    return 0;  // the library frees it
  }
  return 1;  // the reference is ours now
}

void use_or_throw(int ok, std::string_view what) {
  if (ok != 1) throw Error(fmt::format("{}: {}", what, detail::last_error("refused")));
}

}  // namespace

SavedSession::~SavedSession() {
  SSL_SESSION_free(session_);
}

ClientContext::ClientContext(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
ClientContext::~ClientContext() = default;

std::shared_ptr<const ClientContext> ClientContext::create(const ClientSettings& settings) {
  auto impl = std::make_unique<Impl>();
  impl->context.reset(SSL_CTX_new(TLS_client_method()));
  if (!impl->context) throw std::bad_alloc();
  SSL_CTX* c = impl->context.get();
  auto version = [](Version v) { return v == Version::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION; };
  SSL_CTX_set_min_proto_version(c, version(settings.min_version));
  SSL_CTX_set_max_proto_version(c, version(settings.max_version));
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(c, &on_new_session);
  if (!settings.ciphersuites.empty()) {
    use_or_throw(SSL_CTX_set_ciphersuites(c, settings.ciphersuites.c_str()),
                 "TLS 1.3 ciphersuites");
  }
  if (!settings.groups.empty()) {
    use_or_throw(SSL_CTX_set1_groups_list(c, settings.groups.c_str()), "TLS groups");
  }
  if (!settings.ca.text.empty()) {
    detail::BioPtr bio = detail::memory_bio(settings.ca.text);
    X509_STORE* store = SSL_CTX_get_cert_store(c);
    int count = 0;
    while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      detail::X509Ptr owned(ca);
      use_or_throw(X509_STORE_add_cert(store, ca), settings.ca.origin);
      ++count;
    }
    ERR_clear_error();
    if (count == 0) throw Error(fmt::format("{}: no certificate in it", settings.ca.origin));
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
    impl->verify = true;
  }
  if (!settings.certificate.chain.text.empty()) {
    detail::BioPtr bio = detail::memory_bio(settings.certificate.chain.text);
    detail::X509Ptr leaf(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!leaf)
      throw Error(fmt::format("{}: no certificate in it", settings.certificate.chain.origin));
    const Pem& key_pem = settings.certificate.key.text.empty() ? settings.certificate.chain
                                                               : settings.certificate.key;
    detail::BioPtr key_bio = detail::memory_bio(key_pem.text);
    detail::KeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
    if (!key) throw Error(fmt::format("{}: no private key in it", key_pem.origin));
    use_or_throw(SSL_CTX_use_certificate(c, leaf.get()), settings.certificate.chain.origin);
    use_or_throw(SSL_CTX_use_PrivateKey(c, key.get()), key_pem.origin);
  }
  for (const auto& protocol : settings.alpn) {
    impl->alpn.push_back(static_cast<unsigned char>(protocol.size()));
    impl->alpn.insert(impl->alpn.end(), protocol.begin(), protocol.end());
  }
  if (!impl->alpn.empty()) {
    if (SSL_CTX_set_alpn_protos(c, impl->alpn.data(), static_cast<unsigned>(impl->alpn.size())) !=
        0) {
      throw Error("bad ALPN protocol list");
    }
  }
  return std::shared_ptr<const ClientContext>(new ClientContext(std::move(impl)));
}

std::unique_ptr<detail::Stream> ClientContext::Impl::new_stream(const std::string& server_name,
                                                                const SavedSession* resume) const {
  detail::SslPtr ssl(SSL_new(context.get()));
  if (!ssl) return nullptr;
  if (!server_name.empty()) {
    // SSL_set_tlsext_host_name, without the macro's C cast.
    if (SSL_ctrl(ssl.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                 const_cast<char*>(server_name.c_str())) != 1) {
      return nullptr;
    }
    if (verify && SSL_set1_host(ssl.get(), server_name.c_str()) != 1) return nullptr;
  }
  if (resume != nullptr) SSL_set_session(ssl.get(), resume->get());
  ERR_clear_error();
  return std::make_unique<detail::Stream>(std::move(ssl), false);
}

}  // namespace salam::tls
