// Server CPU time per TLS handshake with OpenSSL, client and server in one
// thread over memory BIOs. See README.md for what each row measures.
#include <string>
#include <vector>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common.hpp"

namespace {

using bench::Options;
using bench::require;
using bench::ServerClock;
using bench::ServerCost;

[[noreturn]] void ssl_fail(const char* what) {
  ERR_print_errors_fp(stderr);
  bench::fail("%s", what);
}

void ssl_require(bool condition, const char* what) {
  if (!condition) ssl_fail(what);
}

// Server settings, each one a knob a server can turn.
struct Settings {
  int version = TLS1_3_VERSION;
  int num_tickets = -1;          // SSL_CTX_set_num_tickets; -1: default (2)
  bool release_buffers = false;  // SSL_MODE_RELEASE_BUFFERS
  bool cache_off = false;        // SSL_SESS_CACHE_OFF
  bool no_ticket = false;        // SSL_OP_NO_TICKET (TLS 1.3: stateful tickets)
  bool no_auto_chain = false;    // SSL_MODE_NO_AUTO_CHAIN
  bool own_libctx = false;       // SSL_CTX_new_ex with its own OSSL_LIB_CTX
  bool reuse_ssl = false;        // SSL_clear one SSL instead of SSL_new/free
  bool ticket_cb = false;        // own ticket keys, cipher fetched once
};

// Ticket keys as a server with several processes would set them, through
// SSL_CTX_set_tlsext_ticket_key_evp_cb, with the cipher fetched once.
struct TicketKeys {
  unsigned char name[16];
  unsigned char aes[32];
  unsigned char hmac[32];
  EVP_CIPHER* cipher = nullptr;
};
TicketKeys ticket_keys;

void init_ticket_keys() {
  if (ticket_keys.cipher) return;
  ticket_keys.cipher = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
  ssl_require(ticket_keys.cipher && RAND_bytes(ticket_keys.name, sizeof ticket_keys.name) == 1 &&
                  RAND_bytes(ticket_keys.aes, sizeof ticket_keys.aes) == 1 &&
                  RAND_bytes(ticket_keys.hmac, sizeof ticket_keys.hmac) == 1,
              "ticket keys");
}

int on_ticket_key(SSL*, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                  EVP_MAC_CTX* mac, int encrypt) {
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, ticket_keys.hmac,
                                                           sizeof ticket_keys.hmac),
                         OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  if (encrypt) {
    std::memcpy(name, ticket_keys.name, sizeof ticket_keys.name);
    if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1) return -1;
    return EVP_EncryptInit_ex(cipher, ticket_keys.cipher, nullptr, ticket_keys.aes, iv) == 1 &&
                   EVP_MAC_CTX_set_params(mac, params) == 1
               ? 1
               : -1;
  }
  if (std::memcmp(name, ticket_keys.name, sizeof ticket_keys.name) != 0)
    return 0;  // unknown key: full handshake
  // 2: valid, and issue a new ticket (as the default keys do in TLS 1.3).
  return EVP_DecryptInit_ex(cipher, ticket_keys.cipher, nullptr, ticket_keys.aes, iv) == 1 &&
                 EVP_MAC_CTX_set_params(mac, params) == 1
             ? 2
             : -1;
}

// The sessions the client was handed (one per NewSessionTicket).
struct ClientSessions {
  SSL_SESSION* latest = nullptr;
  long received = 0;
};
ClientSessions client_sessions;

int on_new_session(SSL*, SSL_SESSION* session) {
  SSL_SESSION_free(client_sessions.latest);
  client_sessions.latest = session;
  ++client_sessions.received;
  return 1;  // we keep the reference
}

void set_protocol(SSL_CTX* ctx, int version) {
  ssl_require(SSL_CTX_set_min_proto_version(ctx, version) == 1 &&
                  SSL_CTX_set_max_proto_version(ctx, version) == 1,
              "protocol version");
  if (version == TLS1_3_VERSION)
    ssl_require(SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256") == 1,
                "TLS 1.3 cipher suite");
  else
    ssl_require(SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256") == 1,
                "TLS 1.2 cipher suite");
  ssl_require(SSL_CTX_set1_groups_list(ctx, "X25519:P-256") == 1, "groups");
}

void apply_settings(SSL_CTX* ctx, const Settings& settings) {
  if (settings.num_tickets >= 0)
    ssl_require(SSL_CTX_set_num_tickets(ctx, settings.num_tickets) == 1, "num_tickets");
  if (settings.release_buffers) SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (settings.no_auto_chain) SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
  if (settings.cache_off) SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (settings.no_ticket) SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  if (settings.ticket_cb) {
    init_ticket_keys();
    ssl_require(SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket_key) == 1,
                "ticket key callback");
  }
}

SSL_CTX* make_server_ctx(const Options& options, const Settings& settings, OSSL_LIB_CTX* libctx) {
  SSL_CTX* ctx = SSL_CTX_new_ex(libctx, nullptr, TLS_server_method());
  ssl_require(ctx != nullptr, "SSL_CTX_new_ex (server)");
  set_protocol(ctx, settings.version);
  ssl_require(SSL_CTX_use_certificate_chain_file(ctx, options.cert.c_str()) == 1,
              "server certificate");
  ssl_require(SSL_CTX_use_PrivateKey_file(ctx, options.key.c_str(), SSL_FILETYPE_PEM) == 1,
              "server key");
  ssl_require(SSL_CTX_check_private_key(ctx) == 1, "key matches certificate");
  apply_settings(ctx, settings);
  return ctx;
}

SSL_CTX* make_client_ctx(const Options& options, int version) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  ssl_require(ctx != nullptr, "SSL_CTX_new (client)");
  set_protocol(ctx, version);
  ssl_require(SSL_CTX_load_verify_locations(ctx, options.cert.c_str(), nullptr) == 1,
              "client trust anchor");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, on_new_session);
  return ctx;
}

// An SSL with its two memory BIOs: `in` holds bytes for it to read, `out`
// the bytes it wrote.
struct Endpoint {
  SSL* ssl = nullptr;
  BIO* in = nullptr;
  BIO* out = nullptr;
};

Endpoint make_endpoint(SSL_CTX* ctx, bool server) {
  Endpoint end;
  end.ssl = SSL_new(ctx);
  end.in = BIO_new(BIO_s_mem());
  end.out = BIO_new(BIO_s_mem());
  ssl_require(end.ssl && end.in && end.out, "SSL_new or BIO_new");
  SSL_set_bio(end.ssl, end.in, end.out);
  if (server)
    SSL_set_accept_state(end.ssl);
  else
    SSL_set_connect_state(end.ssl);
  return end;
}

// One handshake call; true once that side has finished.
bool handshake_step(SSL* ssl, const char* side) {
  int result = SSL_do_handshake(ssl);
  if (result == 1) return true;
  if (SSL_get_error(ssl, result) != SSL_ERROR_WANT_READ) ssl_fail(side);
  return false;
}

// The server's library calls, kept out of line so that a profile can tell
// them from the client's.
[[gnu::noinline]] Endpoint server_new(SSL_CTX* ctx) {
  return make_endpoint(ctx, true);
}
[[gnu::noinline]] bool server_handshake(SSL* ssl) {
  return handshake_step(ssl, "server handshake");
}
[[gnu::noinline]] int server_feed(BIO* in, const char* data, int size) {
  return BIO_write(in, data, size);
}
[[gnu::noinline]] int server_drain(BIO* out, char* data, int size) {
  return BIO_read(out, data, size);
}
[[gnu::noinline]] void server_shutdown(SSL* ssl) {
  SSL_shutdown(ssl);
}
[[gnu::noinline]] void server_free(SSL* ssl) {
  SSL_free(ssl);
}
[[gnu::noinline]] void server_clear(SSL* ssl) {
  ssl_require(SSL_clear(ssl) == 1, "SSL_clear");
  SSL_set_accept_state(ssl);
}

void client_to_server(const Endpoint& client, const Endpoint& server, ServerClock& clock) {
  char buffer[16384];
  int n;
  while ((n = BIO_read(client.out, buffer, sizeof buffer)) > 0)
    require(clock([&] { return server_feed(server.in, buffer, n); }) == n, "BIO_write (server)");
}

void server_to_client(const Endpoint& server, const Endpoint& client, ServerClock& clock) {
  char buffer[16384];
  for (;;) {
    int n = clock([&] { return server_drain(server.out, buffer, sizeof buffer); });
    if (n <= 0) return;
    require(BIO_write(client.in, buffer, n) == n, "BIO_write (client)");
  }
}

void discard_output(const Endpoint& server, ServerClock& clock) {
  char buffer[16384];
  while (clock([&] { return server_drain(server.out, buffer, sizeof buffer); }) > 0) {
  }
}

// What a row expects to have been negotiated.
struct Expect {
  int version;
  const char* cipher;  // IANA name
  bool resumed;
};

void check_negotiated(const Endpoint& server, const Endpoint& client, const Expect& expect) {
  require(SSL_version(server.ssl) == expect.version, "negotiated version");
  const char* cipher = SSL_CIPHER_standard_name(SSL_get_current_cipher(server.ssl));
  require(cipher && std::string(cipher) == expect.cipher, "negotiated cipher suite");
  require(SSL_get_negotiated_group(server.ssl) == NID_X25519, "key exchange group is not X25519");
  require(bool(SSL_session_reused(server.ssl)) == expect.resumed &&
              bool(SSL_session_reused(client.ssl)) == expect.resumed,
          expect.resumed ? "handshake did not resume" : "handshake resumed");
  require(SSL_get_verify_result(client.ssl) == X509_V_OK, "client did not verify the server");
  if (!expect.resumed) {
    int type = 0, digest = 0;
    require(SSL_get_peer_signature_type_nid(client.ssl, &type) == 1 && type == EVP_PKEY_EC,
            "server signature is not ECDSA");
    require(SSL_get_peer_signature_nid(client.ssl, &digest) == 1 && digest == NID_sha256,
            "server signature is not ECDSA with SHA-256");
  }
}

class Bench {
 public:
  Bench(const Options& options, const Settings& settings) : settings_(settings) {
    if (settings.own_libctx) {
      libctx_ = OSSL_LIB_CTX_new();
      ssl_require(libctx_ != nullptr, "OSSL_LIB_CTX_new");
    }
    server_ctx_ = make_server_ctx(options, settings, libctx_);
    client_ctx_ = make_client_ctx(options, settings.version);
    if (settings.reuse_ssl) reused_ = make_endpoint(server_ctx_, true);
  }

  ~Bench() {
    if (reused_.ssl) SSL_free(reused_.ssl);
    SSL_CTX_free(server_ctx_);
    SSL_CTX_free(client_ctx_);
    OSSL_LIB_CTX_free(libctx_);
  }

  // One connection: handshake, client reads its tickets, server closes.
  void connect(ServerCost& cost, bool resume) {
    long tickets_before = client_sessions.received;
    Endpoint server =
        settings_.reuse_ssl ? reused_ : cost.create([&] { return server_new(server_ctx_); });
    Endpoint client = make_endpoint(client_ctx_, false);
    prepare_client(client.ssl, resume);
    run_handshake(server, client, cost.handshake);
    read_tickets(client.ssl);
    check_negotiated(server, client, expect(resume));
    close(server, client, cost.close);
    tickets_ += client_sessions.received - tickets_before;
    ++connections_;
  }

  double tickets_per_connection() const {
    return connections_ ? double(tickets_) / double(connections_) : 0;
  }

 private:
  Expect expect(bool resume) const {
    if (settings_.version == TLS1_3_VERSION)
      return {TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256", resume};
    return {TLS1_2_VERSION, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", resume};
  }

  void prepare_client(SSL* ssl, bool resume) {
    ssl_require(SSL_set_tlsext_host_name(ssl, "localhost") == 1, "SNI");
    ssl_require(SSL_set1_host(ssl, "localhost") == 1, "host check");
    if (!resume) return;
    require(client_sessions.latest != nullptr && SSL_SESSION_is_resumable(client_sessions.latest),
            "no resumable session to offer");
    ssl_require(SSL_set_session(ssl, client_sessions.latest) == 1, "SSL_set_session");
  }

  void run_handshake(const Endpoint& server, const Endpoint& client, ServerClock& clock) {
    bool client_done = false, server_done = false;
    for (int flight = 0; flight < 8 && !(client_done && server_done); ++flight) {
      if (!client_done) client_done = handshake_step(client.ssl, "client");
      client_to_server(client, server, clock);
      if (!server_done) server_done = clock([&] { return server_handshake(server.ssl); });
      server_to_client(server, client, clock);
    }
    require(client_done && server_done, "handshake did not finish");
  }

  // The client takes in the NewSessionTicket messages.
  static void read_tickets(SSL* ssl) {
    char byte;
    int result = SSL_read(ssl, &byte, 1);
    if (result > 0 || SSL_get_error(ssl, result) != SSL_ERROR_WANT_READ)
      ssl_fail("client read after the handshake");
  }

  void close(Endpoint& server, Endpoint& client, ServerClock& clock) {
    clock([&] { server_shutdown(server.ssl); });
    discard_output(server, clock);  // the close_notify, sent nowhere
    SSL_shutdown(client.ssl);       // keeps the client's session resumable
    SSL_free(client.ssl);
    if (settings_.reuse_ssl)
      clock([&] { server_clear(server.ssl); });
    else
      clock([&] { server_free(server.ssl); });
  }

  Settings settings_;
  OSSL_LIB_CTX* libctx_ = nullptr;
  SSL_CTX* server_ctx_ = nullptr;
  SSL_CTX* client_ctx_ = nullptr;
  Endpoint reused_;
  long tickets_ = 0;
  long connections_ = 0;
};

struct Row {
  const char* name;
  bool resume;
  Settings settings;
};

Settings tls12() {
  Settings s;
  s.version = TLS1_2_VERSION;
  return s;
}

// Every knob that helps, together (see README.md for each one alone).
Settings tuned() {
  Settings s;
  s.num_tickets = 1;
  s.no_auto_chain = true;
  s.reuse_ssl = true;
  return s;
}

std::vector<Row> rows() {
  auto with = [](auto change) {
    Settings s;
    change(s);
    return s;
  };
  return {
      {"tls13-full", false, {}},
      {"tls13-resume", true, {}},
      {"tls12-full", false, tls12()},
      {"tls13-full-tickets1", false, with([](Settings& s) { s.num_tickets = 1; })},
      {"tls13-full-tickets0", false, with([](Settings& s) { s.num_tickets = 0; })},
      {"tls13-full-release-buffers", false, with([](Settings& s) { s.release_buffers = true; })},
      {"tls13-full-cache-off", false, with([](Settings& s) { s.cache_off = true; })},
      {"tls13-full-no-ticket", false, with([](Settings& s) { s.no_ticket = true; })},
      {"tls13-full-no-auto-chain", false, with([](Settings& s) { s.no_auto_chain = true; })},
      {"tls13-full-own-libctx", false, with([](Settings& s) { s.own_libctx = true; })},
      {"tls13-full-reuse-ssl", false, with([](Settings& s) { s.reuse_ssl = true; })},
      {"tls13-full-ticket-cb", false, with([](Settings& s) { s.ticket_cb = true; })},
      {"tls13-full-tuned", false, tuned()},
      {"tls13-resume-tickets1", true, with([](Settings& s) { s.num_tickets = 1; })},
      {"tls13-resume-no-ticket", true, with([](Settings& s) { s.no_ticket = true; })},
      {"tls13-resume-ticket-cb", true, with([](Settings& s) { s.ticket_cb = true; })},
      {"tls13-resume-tuned", true, tuned()},
      {"tls12-full-cache-off", false,
       [] {
         Settings s = tls12();
         s.cache_off = true;
         return s;
       }()},
  };
}

void run(const Options& options, const Row& row) {
  if (!options.wants(row.name)) return;
  Bench bench(options, row.settings);
  ServerCost unused;
  if (row.resume) bench.connect(unused, false);  // the first ticket
  bench::run_row(options, row.name, [&](ServerCost& cost) { bench.connect(cost, row.resume); });
  std::printf("info %s tickets-per-connection=%.2f\n", row.name, bench.tickets_per_connection());
}

}  // namespace

int main(int argc, char** argv) {
  Options options = bench::parse_options(argc, argv);
  std::printf("library %s\n", OpenSSL_version(OPENSSL_VERSION));
  for (const Row& row : rows())
    run(options, row);
  SSL_SESSION_free(client_sessions.latest);
  EVP_CIPHER_free(ticket_keys.cipher);
  return 0;
}
