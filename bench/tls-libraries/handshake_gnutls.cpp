// Server CPU time per TLS 1.3 handshake with GnuTLS, client and server in one
// thread over push/pull functions on memory buffers. See README.md.
#include <cerrno>
#include <string>

#include <gnutls/gnutls.h>

#include "common.hpp"

namespace {

using bench::Options;
using bench::Pipe;
using bench::require;
using bench::ServerClock;
using bench::ServerCost;

void gnutls_require(int result, const char* what) {
  if (result < 0) bench::fail("%s: %s", what, gnutls_strerror(result));
}

// TLS 1.3 only, TLS_AES_128_GCM_SHA256, X25519 first.
constexpr const char* kPriority =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:"
    "-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1";
// The same, and the server prefers psk_ke to psk_dhe_ke when resuming.
constexpr const char* kPriorityPskKe =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:"
    "-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:"
    "-KX-ALL:+PSK:+ECDHE-PSK:+ECDHE-ECDSA:%SERVER_PRECEDENCE";

// One side of a connection: its session and the pipe it reads from; it
// writes into the peer's.
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

long tickets_received = 0;

int on_ticket(gnutls_session_t, unsigned, unsigned, unsigned, const gnutls_datum_t*) {
  ++tickets_received;
  return 0;
}

// What the server keeps from its start: credentials, priorities, ticket key.
struct ServerSetup {
  gnutls_certificate_credentials_t credentials = nullptr;
  gnutls_priority_t priority = nullptr;
  gnutls_datum_t ticket_key{};
};

// One handshake call; true once that side has finished.
bool handshake_step(gnutls_session_t session, const char* side) {
  int result = gnutls_handshake(session);
  if (result == GNUTLS_E_SUCCESS) return true;
  if (result != GNUTLS_E_AGAIN && result != GNUTLS_E_INTERRUPTED)
    bench::fail("%s handshake: %s", side, gnutls_strerror(result));
  return false;
}

// The server's library calls, kept out of line for profiles.
[[gnu::noinline]] void server_new(const ServerSetup& setup, Endpoint& end, Endpoint& peer) {
  gnutls_require(gnutls_init(&end.session, GNUTLS_SERVER | GNUTLS_NONBLOCK),
                 "gnutls_init (server)");
  gnutls_require(gnutls_priority_set(end.session, setup.priority), "gnutls_priority_set (server)");
  gnutls_require(gnutls_credentials_set(end.session, GNUTLS_CRD_CERTIFICATE, setup.credentials),
                 "gnutls_credentials_set (server)");
  gnutls_require(gnutls_session_ticket_enable_server(end.session, &setup.ticket_key),
                 "gnutls_session_ticket_enable_server");
  attach(end, peer);
}
[[gnu::noinline]] bool server_handshake(gnutls_session_t session) {
  return handshake_step(session, "server");
}
[[gnu::noinline]] void server_shutdown(gnutls_session_t session) {
  gnutls_require(gnutls_bye(session, GNUTLS_SHUT_WR), "gnutls_bye");
}
[[gnu::noinline]] void server_free(gnutls_session_t session) {
  gnutls_deinit(session);
}

struct Expect {
  bool resumed;
  bool psk_ke;
};

void check_negotiated(gnutls_session_t server, gnutls_session_t client, const Expect& expect) {
  require(gnutls_protocol_get_version(server) == GNUTLS_TLS1_3,
          "negotiated version is not TLS 1.3");
  require(gnutls_cipher_get(server) == GNUTLS_CIPHER_AES_128_GCM &&
              gnutls_prf_hash_get(server) == GNUTLS_DIG_SHA256,
          "cipher suite is not TLS_AES_128_GCM_SHA256");
  require(bool(gnutls_session_is_resumed(server)) == expect.resumed &&
              bool(gnutls_session_is_resumed(client)) == expect.resumed,
          expect.resumed ? "handshake did not resume" : "handshake resumed");
  gnutls_group_t group = gnutls_group_get(server);
  if (expect.psk_ke)
    require(group == GNUTLS_GROUP_INVALID, "resumption was not psk_ke");
  else
    require(group == GNUTLS_GROUP_X25519, "key exchange is not X25519");
  if (!expect.resumed)
    require(gnutls_sign_algorithm_get(server) == GNUTLS_SIGN_ECDSA_SECP256R1_SHA256,
            "server signature is not ECDSA P-256 with SHA-256");
}

class Bench {
 public:
  Bench(const Options& options, const char* server_priority) {
    gnutls_require(gnutls_certificate_allocate_credentials(&server_.credentials),
                   "server credentials");
    gnutls_require(gnutls_certificate_set_x509_key_file(server_.credentials, options.cert.c_str(),
                                                        options.key.c_str(), GNUTLS_X509_FMT_PEM),
                   "server certificate and key");
    gnutls_require(gnutls_priority_init(&server_.priority, server_priority, nullptr),
                   "server priority");
    gnutls_require(gnutls_session_ticket_key_generate(&server_.ticket_key), "ticket key");
    gnutls_require(gnutls_certificate_allocate_credentials(&client_credentials_),
                   "client credentials");
    gnutls_require(gnutls_certificate_set_x509_trust_file(client_credentials_, options.cert.c_str(),
                                                          GNUTLS_X509_FMT_PEM),
                   "client trust anchor");
    gnutls_require(gnutls_priority_init(&client_priority_, kPriority, nullptr), "client priority");
  }

  ~Bench() {
    gnutls_free(session_data_.data);
    gnutls_free(server_.ticket_key.data);
    gnutls_priority_deinit(server_.priority);
    gnutls_priority_deinit(client_priority_);
    gnutls_certificate_free_credentials(server_.credentials);
    gnutls_certificate_free_credentials(client_credentials_);
  }

  void connect(ServerCost& cost, const Expect& expect) {
    long tickets_before = tickets_received;
    Endpoint server, client;
    cost.create([&] { server_new(server_, server, client); });
    make_client(client, server, expect.resumed);
    run_handshake(server, client, cost.handshake);
    read_tickets(client.session);
    check_negotiated(server.session, client.session, expect);
    keep_session(client.session);
    cost.close([&] { server_shutdown(server.session); });
    client.incoming.clear();
    gnutls_deinit(client.session);
    cost.close([&] { server_free(server.session); });
    tickets_ += tickets_received - tickets_before;
    ++connections_;
  }

  double tickets_per_connection() const {
    return connections_ ? double(tickets_) / double(connections_) : 0;
  }

 private:
  void make_client(Endpoint& client, Endpoint& server, bool resume) {
    gnutls_require(gnutls_init(&client.session, GNUTLS_CLIENT | GNUTLS_NONBLOCK),
                   "gnutls_init (client)");
    gnutls_require(gnutls_priority_set(client.session, client_priority_), "client priority");
    gnutls_require(
        gnutls_credentials_set(client.session, GNUTLS_CRD_CERTIFICATE, client_credentials_),
        "client credentials");
    gnutls_require(gnutls_server_name_set(client.session, GNUTLS_NAME_DNS, "localhost", 9), "SNI");
    gnutls_session_set_verify_cert(client.session, "localhost", 0);
    gnutls_handshake_set_hook_function(client.session, GNUTLS_HANDSHAKE_NEW_SESSION_TICKET,
                                       GNUTLS_HOOK_POST, on_ticket);
    attach(client, server);
    if (!resume) return;
    require(session_data_.data != nullptr, "no session to resume");
    gnutls_require(gnutls_session_set_data(client.session, session_data_.data, session_data_.size),
                   "gnutls_session_set_data");
  }

  static void run_handshake(Endpoint& server, Endpoint& client, ServerClock& clock) {
    bool client_done = false, server_done = false;
    for (int flight = 0; flight < 8 && !(client_done && server_done); ++flight) {
      if (!client_done) client_done = handshake_step(client.session, "client");
      if (!server_done) server_done = clock([&] { return server_handshake(server.session); });
    }
    require(client_done && server_done, "handshake did not finish");
  }

  // The client takes in the NewSessionTicket messages.
  static void read_tickets(gnutls_session_t client) {
    char byte;
    ssize_t result = gnutls_record_recv(client, &byte, 1);
    if (result != GNUTLS_E_AGAIN) bench::fail("client read after the handshake: %zd", result);
  }

  void keep_session(gnutls_session_t client) {
    gnutls_free(session_data_.data);
    session_data_ = {};
    gnutls_require(gnutls_session_get_data2(client, &session_data_), "gnutls_session_get_data2");
  }

  ServerSetup server_;
  gnutls_certificate_credentials_t client_credentials_ = nullptr;
  gnutls_priority_t client_priority_ = nullptr;
  gnutls_datum_t session_data_{};
  long tickets_ = 0;
  long connections_ = 0;
};

void run(const Options& options, const char* name, const char* priority, Expect expect) {
  if (!options.wants(name)) return;
  Bench bench(options, priority);
  ServerCost unused;
  if (expect.resumed) bench.connect(unused, {false, false});  // first ticket
  bench::run_row(options, name, [&](ServerCost& cost) { bench.connect(cost, expect); });
  std::printf("info %s tickets-per-connection=%.2f\n", name, bench.tickets_per_connection());
}

}  // namespace

int main(int argc, char** argv) {
  Options options = bench::parse_options(argc, argv);
  gnutls_require(gnutls_global_init(), "gnutls_global_init");
  std::printf("library GnuTLS %s\n", gnutls_check_version(nullptr));
  run(options, "tls13-full", kPriority, {false, false});
  run(options, "tls13-resume", kPriority, {true, false});
  run(options, "tls13-resume-psk-ke", kPriorityPskKe, {true, true});
  gnutls_global_deinit();
  return 0;
}
