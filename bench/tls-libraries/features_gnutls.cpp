// Checks that GnuTLS does what a salam server needs, over the same in-memory
// non-blocking transport as the benchmark: TLS 1.3 with X25519 and an ECDSA
// P-256 chain, SNI choosing the certificate, ALPN, client certificates
// checked against a CRL, and ticket resumption. Prints one line per check:
//   check NAME ok|FAIL DETAIL
// usage: features_gnutls PKI_DIR (the files `run` makes; see README.md)
#include <cerrno>
#include <string>

#include <gnutls/gnutls.h>

#include "common.hpp"

namespace {

using bench::Pipe;

constexpr const char* kPriority =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:"
    "-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1";

int failures = 0;

void report(const char* name, bool ok, const std::string& detail) {
  std::printf("check %s %s %s\n", name, ok ? "ok" : "FAIL", detail.c_str());
  if (!ok) ++failures;
}

void must(int result, const char* what) {
  if (result < 0) bench::fail("%s: %s", what, gnutls_strerror(result));
}

long would_block = 0;  // pulls that found no data: the non-blocking path

struct Endpoint {
  gnutls_session_t session = nullptr;
  Pipe incoming;
  Pipe* outgoing = nullptr;
};

ssize_t push(gnutls_transport_ptr_t ptr, const void* data, size_t size) {
  static_cast<Endpoint*>(ptr)->outgoing->write(data, size);
  return ssize_t(size);
}

ssize_t pull(gnutls_transport_ptr_t ptr, void* data, size_t size) {
  auto* end = static_cast<Endpoint*>(ptr);
  std::size_t n = end->incoming.read(data, size);
  if (n > 0) return ssize_t(n);
  ++would_block;
  gnutls_transport_set_errno(end->session, EAGAIN);
  return -1;
}

int pull_timeout(gnutls_transport_ptr_t ptr, unsigned) {
  return static_cast<Endpoint*>(ptr)->incoming.empty() ? 0 : 1;
}

void attach(Endpoint& end, Endpoint& peer) {
  end.outgoing = &peer.incoming;
  gnutls_transport_set_ptr(end.session, &end);
  gnutls_transport_set_push_function(end.session, push);
  gnutls_transport_set_pull_function(end.session, pull);
  gnutls_transport_set_pull_timeout_function(end.session, pull_timeout);
}

gnutls_certificate_credentials_t credentials(const std::string& dir, const char* cert,
                                             const char* key) {
  gnutls_certificate_credentials_t creds;
  must(gnutls_certificate_allocate_credentials(&creds), "credentials");
  must(
      gnutls_certificate_set_x509_trust_file(creds, (dir + "/ca.pem").c_str(), GNUTLS_X509_FMT_PEM),
      "trust anchor");
  if (cert)
    must(gnutls_certificate_set_x509_key_file(creds, (dir + "/" + cert).c_str(),
                                              (dir + "/" + key).c_str(), GNUTLS_X509_FMT_PEM),
         cert);
  return creds;
}

// The server's state: a default certificate and the one SNI selects.
struct Server {
  gnutls_certificate_credentials_t fallback = nullptr;   // CN=default.invalid
  gnutls_certificate_credentials_t localhost = nullptr;  // CN=localhost
  gnutls_priority_t priority = nullptr;
  gnutls_datum_t ticket_key{};
  std::string sni_seen;
};
Server* the_server = nullptr;

// After the ClientHello: choose the certificate by the name asked for.
int on_client_hello(gnutls_session_t session) {
  char name[256];
  size_t size = sizeof name;
  unsigned type = 0;
  if (gnutls_server_name_get(session, name, &size, &type, 0) == 0 && type == GNUTLS_NAME_DNS) {
    the_server->sni_seen.assign(name, size);
    if (the_server->sni_seen == "localhost")
      return gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, the_server->localhost);
  }
  return 0;
}

void server_session(Server& server, Endpoint& end, Endpoint& peer) {
  must(gnutls_init(&end.session, GNUTLS_SERVER | GNUTLS_NONBLOCK), "init");
  must(gnutls_priority_set(end.session, server.priority), "priority");
  must(gnutls_credentials_set(end.session, GNUTLS_CRD_CERTIFICATE, server.fallback), "credentials");
  gnutls_certificate_server_set_request(end.session, GNUTLS_CERT_REQUIRE);
  gnutls_session_set_verify_cert(end.session, nullptr, 0);
  gnutls_handshake_set_post_client_hello_function(end.session, on_client_hello);
  gnutls_datum_t protocols[] = {
      {reinterpret_cast<unsigned char*>(const_cast<char*>("http/1.1")), 8}};
  must(gnutls_alpn_set_protocols(end.session, protocols, 1, GNUTLS_ALPN_SERVER_PRECEDENCE),
       "server ALPN");
  must(gnutls_session_ticket_enable_server(end.session, &server.ticket_key), "tickets");
  attach(end, peer);
}

void client_session(gnutls_certificate_credentials_t creds, gnutls_priority_t priority,
                    Endpoint& end, Endpoint& peer) {
  must(gnutls_init(&end.session, GNUTLS_CLIENT | GNUTLS_NONBLOCK), "init");
  must(gnutls_priority_set(end.session, priority), "priority");
  must(gnutls_credentials_set(end.session, GNUTLS_CRD_CERTIFICATE, creds), "credentials");
  must(gnutls_server_name_set(end.session, GNUTLS_NAME_DNS, "localhost", 9), "SNI");
  gnutls_session_set_verify_cert(end.session, "localhost", 0);
  gnutls_datum_t protocols[] = {
      {reinterpret_cast<unsigned char*>(const_cast<char*>("h2")), 2},
      {reinterpret_cast<unsigned char*>(const_cast<char*>("http/1.1")), 8}};
  must(gnutls_alpn_set_protocols(end.session, protocols, 2, 0), "ALPN");
  attach(end, peer);
}

struct Outcome {
  bool done = false;
  int server_error = 0;
  int client_error = 0;
};

int step(gnutls_session_t session, bool& done) {
  int result = gnutls_handshake(session);
  if (result == 0) done = true;
  return result < 0 && gnutls_error_is_fatal(result) ? result : 0;
}

Outcome handshake(Endpoint& server, Endpoint& client) {
  Outcome out;
  bool client_done = false, server_done = false;
  for (int flight = 0; flight < 10 && !(client_done && server_done); ++flight) {
    if (!client_done && (out.client_error = step(client.session, client_done))) break;
    if (!server_done && (out.server_error = step(server.session, server_done))) break;
  }
  out.done = client_done && server_done;
  if (out.done) {  // the client takes in its ticket
    char byte;
    gnutls_record_recv(client.session, &byte, 1);
  }
  return out;
}

std::string alpn(gnutls_session_t session) {
  gnutls_datum_t selected{};
  if (gnutls_alpn_get_selected_protocol(session, &selected) < 0) return "";
  return std::string(reinterpret_cast<char*>(selected.data), selected.size);
}

std::string describe(const Outcome& out) {
  if (out.done) return "handshake completed";
  return std::string("server: ") + (out.server_error ? gnutls_strerror(out.server_error) : "-") +
         "; client: " + (out.client_error ? gnutls_strerror(out.client_error) : "-");
}

struct Connection {
  Endpoint server, client;
  Outcome outcome;

  ~Connection() {
    gnutls_deinit(server.session);
    gnutls_deinit(client.session);
  }
};

void connect(Server& server, gnutls_certificate_credentials_t client_creds,
             gnutls_priority_t priority, Connection& c, const gnutls_datum_t* resume = nullptr) {
  server_session(server, c.server, c.client);
  client_session(client_creds, priority, c.client, c.server);
  if (resume)
    must(gnutls_session_set_data(c.client.session, resume->data, resume->size), "session data");
  c.outcome = handshake(c.server, c.client);
}

void check_good_client(Server& server, gnutls_certificate_credentials_t creds,
                       gnutls_priority_t priority, gnutls_datum_t& session) {
  Connection c;
  long blocked_before = would_block;
  connect(server, creds, priority, c);
  gnutls_session_t s = c.server.session;
  bool tls13 = c.outcome.done && gnutls_protocol_get_version(s) == GNUTLS_TLS1_3 &&
               gnutls_cipher_get(s) == GNUTLS_CIPHER_AES_128_GCM &&
               gnutls_group_get(s) == GNUTLS_GROUP_X25519 &&
               gnutls_sign_algorithm_get(s) == GNUTLS_SIGN_ECDSA_SECP256R1_SHA256;
  report("tls13-x25519-ecdsa-p256", tls13, describe(c.outcome));
  report("nonblocking-custom-io", c.outcome.done && would_block > blocked_before,
         "push/pull functions over memory; " + std::to_string(would_block - blocked_before) +
             " pulls returned EAGAIN");
  report("sni-selects-certificate", c.outcome.done && server.sni_seen == "localhost",
         "post-client-hello function saw '" + server.sni_seen +
             "' and set the localhost credentials; the client verified them");
  report("alpn", alpn(s) == "http/1.1" && alpn(c.client.session) == "http/1.1",
         "client offered h2,http/1.1; server chose '" + alpn(s) + "'");
  unsigned peers = 0;
  bool verified = c.outcome.done && gnutls_certificate_get_peers(s, &peers) != nullptr &&
                  peers >= 1 && gnutls_session_get_verify_cert_status(s) == 0;
  report("client-certificate-verified", verified,
         "GNUTLS_CERT_REQUIRE and gnutls_session_set_verify_cert on the server");
  must(gnutls_session_get_data2(c.client.session, &session), "session data");
}

void check_rejected(const char* name, Server& server, gnutls_certificate_credentials_t creds,
                    gnutls_priority_t priority, unsigned status_bit) {
  Connection c;
  connect(server, creds, priority, c);
  unsigned status = gnutls_session_get_verify_cert_status(c.server.session);
  bool ok =
      !c.outcome.done && c.outcome.server_error != 0 && (status_bit == 0 || (status & status_bit));
  report(name, ok, describe(c.outcome));
}

void check_resumption(Server& server, gnutls_certificate_credentials_t creds,
                      gnutls_priority_t priority, const gnutls_datum_t& session) {
  Connection c;
  connect(server, creds, priority, c, &session);
  bool ok = c.outcome.done && gnutls_session_is_resumed(c.server.session) &&
            gnutls_session_is_resumed(c.client.session);
  report("ticket-resumption", ok, describe(c.outcome) + (ok ? ", resumed" : ", not resumed"));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) bench::fail("usage: %s PKI_DIR", argv[0]);
  std::string dir = argv[1];
  must(gnutls_global_init(), "global init");
  std::printf("library GnuTLS %s\n", gnutls_check_version(nullptr));

  Server server;
  server.fallback = credentials(dir, "default.pem", "default.key");
  server.localhost = credentials(dir, "server.pem", "server.key");
  for (auto creds : {server.fallback, server.localhost})
    must(gnutls_certificate_set_x509_crl_file(creds, (dir + "/crl.pem").c_str(),
                                              GNUTLS_X509_FMT_PEM),
         "CRL");
  must(gnutls_priority_init(&server.priority, kPriority, nullptr), "priority");
  must(gnutls_session_ticket_key_generate(&server.ticket_key), "ticket key");
  the_server = &server;

  auto good = credentials(dir, "client.pem", "client.key");
  auto revoked = credentials(dir, "revoked.pem", "revoked.key");
  auto none = credentials(dir, nullptr, nullptr);
  gnutls_priority_t priority;
  must(gnutls_priority_init(&priority, kPriority, nullptr), "priority");

  gnutls_datum_t session{};
  check_good_client(server, good, priority, session);
  check_resumption(server, good, priority, session);
  check_rejected("revoked-client-certificate-rejected", server, revoked, priority,
                 GNUTLS_CERT_REVOKED);
  check_rejected("missing-client-certificate-rejected", server, none, priority, 0);

  gnutls_free(session.data);
  gnutls_free(server.ticket_key.data);
  for (auto creds : {server.fallback, server.localhost, good, revoked, none})
    gnutls_certificate_free_credentials(creds);
  gnutls_priority_deinit(server.priority);
  gnutls_priority_deinit(priority);
  gnutls_global_deinit();
  return failures ? 1 : 0;
}
