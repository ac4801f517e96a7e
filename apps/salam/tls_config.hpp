// TLS on a listener: the settings the flags and the file give, and the
// context finish() builds from them (re-read at every reload, so that a
// reload picks up renewed certificates; a broken one rejects the reload).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <salam/time.hpp>
#include <salam/tls.hpp>

namespace salam::daemon {

using namespace std::chrono_literals;

struct TlsConfig {
  std::vector<std::string> cert_files;  // PEM: chain, and the key unless key_files pairs one
  std::vector<std::string> key_files;   // empty, or one per certificate, in order
  std::vector<std::string> alpn;
  tls::Version min_version = tls::Version::tls1_2;
  std::string ciphers;
  std::string ciphersuites;
  std::string groups;
  tls::SniMode sni = tls::SniMode::default_certificate;
  Duration handshake_timeout = 10s;
  tls::ClientVerify client_verify = tls::ClientVerify::none;
  std::string client_ca_file;
  std::string crl_file;
  int verify_depth = 4;

  std::shared_ptr<const tls::ServerContext> context;  // made by finish_tls()

  bool enabled() const noexcept { return !cert_files.empty(); }
};

// The settings with one string value, by name: tls-min-version,
// tls-ciphers, tls-ciphersuites, tls-groups, tls-alpn (a comma-separated
// list), tls-sni, tls-handshake-timeout, tls-client-verify, tls-client-ca,
// tls-crl, tls-verify-depth. Returns false if `name` is none of them;
// throws ConfigError for a bad value.
bool set_tls_setting(TlsConfig& tls, std::string_view name, std::string_view value,
                     std::string_view where);
// Every name set_tls_setting() takes, with a line of help and the value's name.
struct TlsSettingInfo {
  std::string_view name;
  std::string_view value_name;
  std::string_view help;
};
const std::vector<TlsSettingInfo>& tls_settings();

// Reads the certificates, keys, CAs and CRL and builds the context:
// throws ConfigError naming `origin` and the file.
void finish_tls(TlsConfig& tls, const std::string& origin);

// The secret behind session tickets: one per process, so that sessions
// resume across reloads (each still bound to what it was made under).
std::shared_ptr<tls::TicketKeys> process_ticket_keys();

}  // namespace salam::daemon
