// TLS: a connection's bytes, encrypted, as one phase of its life.
//
// tls::accept() runs the server's side of a handshake on a Connection and,
// once it succeeds, leaves a TLS layer on it: from then on read(),
// read_some() and write_all() move plaintext, and close() sends
// close_notify before the FIN (see salam/detail/layer.hpp). Every handler
// therefore works over TLS unchanged. tls::connect() is the client's side.
//
// A ServerContext is built once, off the event loops, from PEM text, and
// checked whole (each key matches its certificate, each chain is in order,
// no certificate has expired): building throws tls::Error naming what is
// wrong. It is immutable and shared by every shard; to change certificates,
// build a new one and hand it to new connections (handshakes in progress
// keep the one they started with). OpenSSL 3 does the cryptography.
//
// Safe by default: TLS 1.2 at least; no renegotiation, no compression, no
// early data; KeyUpdate messages rate-limited; session tickets whose keys
// live in memory only, rotate every hour and are shared by every context
// given the same TicketKeys; a resumed session is bound to the certificate,
// the server name and the client-verification settings it was made under
// (see docs/tls.md).
//
// Threading: contexts on any thread; accept() and connect() on the loop of
// the connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <salam/connection.hpp>
#include <salam/task.hpp>
#include <salam/time.hpp>

namespace salam::tls {

// A certificate, its key or another setting that cannot be used.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Version : std::uint8_t { tls1_2, tls1_3 };
enum class ClientVerify : std::uint8_t { none, optional, required };
// default: a name that no certificate has gets the first certificate;
// strict: such a name, or none, is refused (alert unrecognized_name).
enum class SniMode : std::uint8_t { default_certificate, strict };

// PEM text and where it came from (for messages).
struct Pem {
  std::string text;
  std::string origin;
};

struct CertificateSource {
  Pem chain;  // the certificate, then the chain; may hold the key as well
  Pem key;    // empty: the key is in `chain`
};

struct ServerSettings {
  // The first is the default; the others are chosen by the name the client
  // asks for (SNI), matched against each certificate's DNS names (its
  // subjectAltName, or its common name if it has none; *.example.com
  // matches one label).
  std::vector<CertificateSource> certificates;
  Version min_version = Version::tls1_2;
  std::string ciphers;            // TLS 1.2 cipher list (OpenSSL syntax); empty: ECDHE with AEADs
  std::string ciphersuites;       // TLS 1.3; empty: AES-128-GCM, ChaCha20, AES-256-GCM
  std::string groups;             // key exchange groups; empty: X25519:P-256:P-384
  std::vector<std::string> alpn;  // in order of preference; empty: no ALPN
  SniMode sni = SniMode::default_certificate;
  ClientVerify client_verify = ClientVerify::none;
  Pem client_ca;  // needed for optional and required
  Pem crl;        // optional: revoked client certificates
  int verify_depth = 4;
};

// The secret behind session tickets: random, in memory only. Ticket keys
// are derived from it per hour; a ticket is accepted in the hour it was
// made and the next. Share one among the contexts (and the reloads) whose
// sessions may resume one another's: binding still limits each session to
// the certificate, name and verification it was made under.
class TicketKeys;
std::shared_ptr<TicketKeys> make_ticket_keys();

class ServerContext {
 public:
  // Throws tls::Error. `keys` null: a TicketKeys of its own.
  static std::shared_ptr<const ServerContext> create(const ServerSettings& settings,
                                                     std::shared_ptr<TicketKeys> keys = nullptr);
  ~ServerContext();
  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;

  // What checking found worth saying: certificates that expire soon.
  const std::vector<std::string>& warnings() const noexcept;
  // Each certificate, in the order given: where it came from and when it
  // (or the first certificate of its chain to do so) expires.
  struct Certificate {
    std::string origin;
    std::chrono::system_clock::time_point not_after;
  };
  const std::vector<Certificate>& certificates() const noexcept;

  struct Impl;
  const Impl& impl() const noexcept { return *impl_; }

 private:
  explicit ServerContext(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

struct ClientSettings {
  Pem ca;                         // empty: no verification of the server (for tests and benchmarks)
  CertificateSource certificate;  // optional: a client certificate
  std::vector<std::string> alpn;
  Version min_version = Version::tls1_2;
  Version max_version = Version::tls1_3;
  std::string ciphersuites;
  std::string groups;
};

class ClientContext {
 public:
  static std::shared_ptr<const ClientContext> create(const ClientSettings& settings);
  ~ClientContext();
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;

  struct Impl;
  const Impl& impl() const noexcept { return *impl_; }

 private:
  explicit ClientContext(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

// A session a client may resume (what a server's ticket holds for it).
class SavedSession;

// What a handshake established.
struct SessionInfo {
  std::string_view version;  // "TLSv1.3"
  std::string_view cipher;   // "TLS_AES_128_GCM_SHA256"
  std::string server_name;   // as the client asked for it (SNI), or empty
  std::string alpn;
  std::string peer_subject;  // the peer's certificate subject, if it sent one
  bool resumed = false;
  Duration duration{};
};

struct Handshake {
  // Empty on success; timed_out(), cancelled(), an errno code, or
  // tls_failure() with `detail` saying why (an alert, a version, no shared
  // cipher, ...).
  std::error_code error;
  std::string_view detail;  // static text
  SessionInfo info;
  explicit operator bool() const noexcept { return !error; }
};

// The error a TLS failure reports (category "salam").
std::error_code tls_failure() noexcept;

Task<Handshake> accept(Connection& connection, std::shared_ptr<const ServerContext> context,
                       Deadline deadline);
// `server_name` for SNI (empty: none); `resume` a session from an earlier
// connection to the same server.
Task<Handshake> connect(Connection& connection, std::shared_ptr<const ClientContext> context,
                        std::string server_name, Deadline deadline,
                        std::shared_ptr<const SavedSession> resume = nullptr);
// The session a client connection may resume later: the server's latest
// ticket (TLS 1.3 sends it after the handshake, so read first), or null.
std::shared_ptr<const SavedSession> saved_session(Connection& connection);

// The details of a failed read or write on a TLS connection (static text),
// empty if there is none.
std::string_view failure_detail(Connection& connection) noexcept;

// Whether the kernel can take over TLS records (kTLS). Asked once.
bool kernel_tls_available() noexcept;

}  // namespace salam::tls
