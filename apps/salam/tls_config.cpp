#include "tls_config.hpp"

#include <charconv>

#include <fmt/format.h>

#include <salam/printable.hpp>

#include "config.hpp"
#include "input_file.hpp"

namespace salam::daemon {

namespace {

std::vector<std::string> split_list(std::string_view list) {
  std::vector<std::string> items;
  while (!list.empty()) {
    const auto comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && item.front() == ' ')
      item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ')
      item.remove_suffix(1);
    if (!item.empty()) items.emplace_back(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return items;
}

[[noreturn]] void bad_choice(std::string_view value, std::string_view choices,
                             std::string_view where) {
  throw ConfigError(where, fmt::format("expected {}, not '{}'", choices, printable(value)));
}

tls::Pem read_pem(const std::string& path, std::string_view what, const std::string& origin) {
  return {read_input_file_or_throw(path, kMaxPemFile, what, origin), printable(path, 256)};
}

}  // namespace

const std::vector<TlsSettingInfo>& tls_settings() {
  static const std::vector<TlsSettingInfo> settings = {
      {"tls-min-version", "VERSION", "1.2 (default) or 1.3: the oldest TLS version accepted"},
      {"tls-ciphers", "LIST", "TLS 1.2 ciphers, in OpenSSL's syntax (default: ECDHE with AEADs)"},
      {"tls-ciphersuites", "LIST", "TLS 1.3 ciphersuites, in OpenSSL's syntax"},
      {"tls-groups", "LIST", "Key exchange groups (default X25519:P-256:P-384)"},
      {"tls-alpn", "LIST", "Protocols to offer by ALPN, in order (e.g. h2,http/1.1)"},
      {"tls-sni", "MODE", "default (a name no certificate has gets the first) or strict (refused)"},
      {"tls-handshake-timeout", "DURATION", "How long a TLS handshake may take (default 10s)"},
      {"tls-client-verify", "MODE", "none (default), optional or required: client certificates"},
      {"tls-client-ca", "FILE", "The CAs that sign client certificates (PEM)"},
      {"tls-crl", "FILE", "Revoked client certificates (PEM CRLs)"},
      {"tls-verify-depth", "N", "Longest client certificate chain, 1..16 (default 4)"},
  };
  return settings;
}

bool set_tls_setting(TlsConfig& tls, std::string_view name, std::string_view value,
                     std::string_view where) {
  if (name == "tls-min-version") {
    if (value == "1.2") {
      tls.min_version = tls::Version::tls1_2;
    } else if (value == "1.3") {
      tls.min_version = tls::Version::tls1_3;
    } else {
      bad_choice(value, "1.2 or 1.3", where);
    }
  } else if (name == "tls-ciphers") {
    tls.ciphers = std::string(value);
  } else if (name == "tls-ciphersuites") {
    tls.ciphersuites = std::string(value);
  } else if (name == "tls-groups") {
    tls.groups = std::string(value);
  } else if (name == "tls-alpn") {
    tls.alpn = split_list(value);
  } else if (name == "tls-sni") {
    if (value == "default") {
      tls.sni = tls::SniMode::default_certificate;
    } else if (value == "strict") {
      tls.sni = tls::SniMode::strict;
    } else {
      bad_choice(value, "default or strict", where);
    }
  } else if (name == "tls-handshake-timeout") {
    set_timeout(tls.handshake_timeout, value, where);
  } else if (name == "tls-client-verify") {
    if (value == "none") {
      tls.client_verify = tls::ClientVerify::none;
    } else if (value == "optional") {
      tls.client_verify = tls::ClientVerify::optional;
    } else if (value == "required") {
      tls.client_verify = tls::ClientVerify::required;
    } else {
      bad_choice(value, "none, optional or required", where);
    }
  } else if (name == "tls-client-ca") {
    tls.client_ca_file = std::string(value);
  } else if (name == "tls-crl") {
    tls.crl_file = std::string(value);
  } else if (name == "tls-verify-depth") {
    int depth = 0;
    const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), depth);
    if (error != std::errc() || end != value.data() + value.size() || depth < 1 || depth > 16) {
      throw ConfigError(where, fmt::format("verify depth must be a number between 1 and 16, not "
                                           "'{}'",
                                           printable(value)));
    }
    tls.verify_depth = depth;
  } else {
    return false;
  }
  return true;
}

void finish_tls(TlsConfig& tls, const std::string& origin) {
  tls.context.reset();
  if (!tls.enabled()) {
    if (!tls.key_files.empty() || !tls.client_ca_file.empty() || !tls.crl_file.empty()) {
      throw ConfigError(origin, "TLS settings without a certificate: add tls-cert");
    }
    return;
  }
  if (!tls.key_files.empty() && tls.key_files.size() != tls.cert_files.size()) {
    throw ConfigError(origin,
                      fmt::format("{} tls-key file(s) for {} tls-cert file(s): give one key "
                                  "per certificate, in the same order, or put each key "
                                  "in its certificate's file",
                                  tls.key_files.size(), tls.cert_files.size()));
  }
  tls::ServerSettings settings;
  for (std::size_t i = 0; i < tls.cert_files.size(); ++i) {
    tls::CertificateSource source;
    source.chain = read_pem(tls.cert_files[i], "certificate file", origin);
    if (!tls.key_files.empty()) source.key = read_pem(tls.key_files[i], "key file", origin);
    settings.certificates.push_back(std::move(source));
  }
  settings.min_version = tls.min_version;
  settings.ciphers = tls.ciphers;
  settings.ciphersuites = tls.ciphersuites;
  settings.groups = tls.groups;
  settings.alpn = tls.alpn;
  settings.sni = tls.sni;
  settings.client_verify = tls.client_verify;
  settings.verify_depth = tls.verify_depth;
  if (!tls.client_ca_file.empty()) {
    settings.client_ca = read_pem(tls.client_ca_file, "client CA file", origin);
  }
  if (!tls.crl_file.empty()) settings.crl = read_pem(tls.crl_file, "CRL file", origin);
  try {
    tls.context = tls::ServerContext::create(settings, process_ticket_keys());
  } catch (const tls::Error& e) {
    throw ConfigError(origin, e.what());
  }
}

std::shared_ptr<tls::TicketKeys> process_ticket_keys() {
  static const std::shared_ptr<tls::TicketKeys> keys = tls::make_ticket_keys();
  return keys;
}

}  // namespace salam::daemon
