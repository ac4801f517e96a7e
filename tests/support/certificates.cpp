#include "certificates.hpp"

#include <memory>
#include <stdexcept>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls/openssl.hpp"

namespace salam::testing {

namespace {

using tls::detail::BioPtr;
using tls::detail::KeyPtr;
using tls::detail::X509Ptr;

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("making a test certificate: ") + what);
}

std::string text_of(BIO* bio) {
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(length));
}

KeyPtr read_key(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return KeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

X509Ptr read_certificate(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

void add_extension(X509* certificate, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer, certificate, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str());
  check(extension != nullptr, "extension");
  X509_add_ext(certificate, extension, -1);
  X509_EXTENSION_free(extension);
}

}  // namespace

Issued issue(const CertificateRequest& request, const Issued* issuer) {
  KeyPtr key(EVP_EC_gen("P-256"));
  check(key != nullptr, "key");
  X509Ptr certificate(X509_new());
  X509_set_version(certificate.get(), 2);
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(certificate.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(certificate.get()),
                  std::chrono::duration_cast<std::chrono::seconds>(request.valid_from).count());
  X509_gmtime_adj(X509_getm_notAfter(certificate.get()),
                  std::chrono::duration_cast<std::chrono::seconds>(request.valid_until).count());
  X509_set_pubkey(certificate.get(), key.get());
  X509_NAME* name = X509_get_subject_name(certificate.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(request.common_name.c_str()),
                             -1, -1, 0);
  X509Ptr issuer_certificate;
  KeyPtr issuer_key;
  if (issuer != nullptr) {
    issuer_certificate = read_certificate(issuer->certificate);
    issuer_key = read_key(issuer->key);
    check(issuer_certificate && issuer_key, "issuer");
    X509_set_issuer_name(certificate.get(), X509_get_subject_name(issuer_certificate.get()));
  } else {
    X509_set_issuer_name(certificate.get(), name);
  }
  X509* signer = issuer_certificate ? issuer_certificate.get() : certificate.get();
  add_extension(certificate.get(), signer, NID_basic_constraints,
                request.is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  if (request.is_ca)
    add_extension(certificate.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  if (!request.dns_names.empty()) {
    std::string names;
    for (const auto& dns : request.dns_names)
      names += (names.empty() ? "DNS:" : ",DNS:") + dns;
    add_extension(certificate.get(), signer, NID_subject_alt_name, names);
  }
  check(X509_sign(certificate.get(), issuer_key ? issuer_key.get() : key.get(), EVP_sha256()) > 0,
        "signature");

  Issued issued;
  BioPtr out(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(out.get(), certificate.get());
  issued.certificate = text_of(out.get());
  BioPtr key_out(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(key_out.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  issued.key = text_of(key_out.get());
  return issued;
}

}  // namespace salam::testing
