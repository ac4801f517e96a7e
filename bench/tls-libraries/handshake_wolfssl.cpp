// Server CPU time per TLS 1.3 handshake with wolfSSL, client and server in one
// thread over custom I/O callbacks on memory buffers. See README.md.
#include <string>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "common.hpp"

namespace {

using bench::Options;
using bench::Pipe;
using bench::require;
using bench::ServerClock;
using bench::ServerCost;

void wolf_require(int result, const char* what) {
  if (result != WOLFSSL_SUCCESS) bench::fail("%s: %d", what, result);
}

[[noreturn]] void wolf_fail(WOLFSSL* ssl, int result, const char* what) {
  int error = wolfSSL_get_error(ssl, result);
  char text[WOLFSSL_MAX_ERROR_SZ];
  wolfSSL_ERR_error_string_n(error, text, sizeof text);
  bench::fail("%s: %d %s", what, error, text);
}

// One side of a connection: what it reads, and where it writes (the peer's).
struct Endpoint {
  WOLFSSL* ssl = nullptr;
  Pipe incoming;
  Pipe* outgoing = nullptr;
};

int receive(WOLFSSL*, char* data, int size, void* ctx) {
  std::size_t n = static_cast<Endpoint*>(ctx)->incoming.read(data, size);
  return n > 0 ? int(n) : WOLFSSL_CBIO_ERR_WANT_READ;
}

int send(WOLFSSL*, char* data, int size, void* ctx) {
  static_cast<Endpoint*>(ctx)->outgoing->write(data, size);
  return size;
}

void attach(Endpoint& end, Endpoint& peer) {
  end.outgoing = &peer.incoming;
  wolfSSL_SSLSetIORecv(end.ssl, receive);
  wolfSSL_SSLSetIOSend(end.ssl, send);
  wolfSSL_SetIOReadCtx(end.ssl, &end);
  wolfSSL_SetIOWriteCtx(end.ssl, &end);
}

long tickets_received = 0;

int on_ticket(WOLFSSL*, const unsigned char*, int, void*) {
  ++tickets_received;
  return 0;
}

void set_suite_and_groups(WOLFSSL_CTX* ctx) {
  wolf_require(wolfSSL_CTX_set_cipher_list(ctx, "TLS13-AES128-GCM-SHA256"), "cipher suite");
  int groups[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1};
  wolf_require(wolfSSL_CTX_set_groups(ctx, groups, 2), "groups");
}

struct Settings {
  bool psk_ke = false;     // wolfSSL_CTX_no_dhe_psk on the server
  bool cache_off = false;  // WOLFSSL_SESS_CACHE_OFF on the server
};

WOLFSSL_CTX* make_server_ctx(const Options& options, const Settings& settings) {
  WOLFSSL_CTX* ctx = wolfSSL_CTX_new(wolfTLSv1_3_server_method());
  require(ctx != nullptr, "wolfSSL_CTX_new (server)");
  set_suite_and_groups(ctx);
  wolf_require(wolfSSL_CTX_use_certificate_chain_file(ctx, options.cert.c_str()),
               "server certificate");
  wolf_require(wolfSSL_CTX_use_PrivateKey_file(ctx, options.key.c_str(), WOLFSSL_FILETYPE_PEM),
               "server key");
  if (settings.psk_ke) require(wolfSSL_CTX_no_dhe_psk(ctx) == 0, "wolfSSL_CTX_no_dhe_psk");
  if (settings.cache_off) wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
  return ctx;
}

WOLFSSL_CTX* make_client_ctx(const Options& options) {
  WOLFSSL_CTX* ctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
  require(ctx != nullptr, "wolfSSL_CTX_new (client)");
  set_suite_and_groups(ctx);
  wolf_require(wolfSSL_CTX_load_verify_locations(ctx, options.cert.c_str(), nullptr),
               "client trust anchor");
  wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, nullptr);
  return ctx;
}

// One handshake call; true once that side has finished.
bool handshake_step(WOLFSSL* ssl, bool server) {
  int result = server ? wolfSSL_accept(ssl) : wolfSSL_connect(ssl);
  if (result == WOLFSSL_SUCCESS) return true;
  if (wolfSSL_get_error(ssl, result) != WOLFSSL_ERROR_WANT_READ)
    wolf_fail(ssl, result, server ? "server handshake" : "client handshake");
  return false;
}

// The server's library calls, kept out of line for profiles.
[[gnu::noinline]] void server_new(WOLFSSL_CTX* ctx, Endpoint& end, Endpoint& peer) {
  end.ssl = wolfSSL_new(ctx);
  require(end.ssl != nullptr, "wolfSSL_new (server)");
  attach(end, peer);
}
[[gnu::noinline]] bool server_handshake(WOLFSSL* ssl) {
  return handshake_step(ssl, true);
}
[[gnu::noinline]] void server_shutdown(WOLFSSL* ssl) {
  wolfSSL_shutdown(ssl);
}
[[gnu::noinline]] void server_free(WOLFSSL* ssl) {
  wolfSSL_free(ssl);
}

struct Expect {
  bool resumed;
  bool psk_ke;
};

void check_negotiated(WOLFSSL* server, WOLFSSL* client, const Expect& expect) {
  require(wolfSSL_version(server) == TLS1_3_VERSION, "negotiated version is not TLS 1.3");
  const char* cipher = wolfSSL_get_cipher_name(server);
  require(cipher && std::string(cipher) == "TLS13-AES128-GCM-SHA256",
          "cipher suite is not TLS_AES_128_GCM_SHA256");
  require(bool(wolfSSL_session_reused(server)) == expect.resumed &&
              bool(wolfSSL_session_reused(client)) == expect.resumed,
          expect.resumed ? "handshake did not resume" : "handshake resumed");
  const char* curve = wolfSSL_get_curve_name(server);
  if (expect.psk_ke)
    require(curve == nullptr, "resumption was not psk_ke");
  else
    require(curve && std::string(curve) == "X25519", "key exchange is not X25519");
}

class Bench {
 public:
  Bench(const Options& options, const Settings& settings)
      : server_ctx_(make_server_ctx(options, settings)),
        client_ctx_(make_client_ctx(options)),
        client_no_dhe_(settings.psk_ke) {}

  ~Bench() {
    wolfSSL_SESSION_free(session_);
    wolfSSL_CTX_free(server_ctx_);
    wolfSSL_CTX_free(client_ctx_);
  }

  void connect(ServerCost& cost, const Expect& expect) {
    long tickets_before = tickets_received;
    Endpoint server, client;
    cost.create([&] { server_new(server_ctx_, server, client); });
    make_client(client, server, expect.resumed);
    run_handshake(server, client, cost.handshake);
    read_tickets(client.ssl);
    check_negotiated(server.ssl, client.ssl, expect);
    keep_session(client.ssl);
    cost.close([&] { server_shutdown(server.ssl); });
    wolfSSL_free(client.ssl);
    cost.close([&] { server_free(server.ssl); });
    tickets_ += tickets_received - tickets_before;
    ++connections_;
  }

  double tickets_per_connection() const {
    return connections_ ? double(tickets_) / double(connections_) : 0;
  }

 private:
  void make_client(Endpoint& client, Endpoint& server, bool resume) {
    client.ssl = wolfSSL_new(client_ctx_);
    require(client.ssl != nullptr, "wolfSSL_new (client)");
    attach(client, server);
    wolf_require(wolfSSL_UseSNI(client.ssl, WOLFSSL_SNI_HOST_NAME, "localhost", 9), "SNI");
    wolf_require(wolfSSL_check_domain_name(client.ssl, "localhost"), "host check");
    wolf_require(wolfSSL_UseKeyShare(client.ssl, WOLFSSL_ECC_X25519), "key share");
    wolf_require(wolfSSL_set_SessionTicket_cb(client.ssl, on_ticket, nullptr), "ticket callback");
    if (!resume) return;
    if (client_no_dhe_) require(wolfSSL_no_dhe_psk(client.ssl) == 0, "wolfSSL_no_dhe_psk");
    require(session_ != nullptr, "no session to resume");
    wolf_require(wolfSSL_set_session(client.ssl, session_), "wolfSSL_set_session");
  }

  static void run_handshake(const Endpoint& server, const Endpoint& client, ServerClock& clock) {
    bool client_done = false, server_done = false;
    for (int flight = 0; flight < 8 && !(client_done && server_done); ++flight) {
      if (!client_done) client_done = handshake_step(client.ssl, false);
      if (!server_done) server_done = clock([&] { return server_handshake(server.ssl); });
    }
    require(client_done && server_done, "handshake did not finish");
  }

  // The client takes in the NewSessionTicket messages.
  static void read_tickets(WOLFSSL* client) {
    char byte;
    int result = wolfSSL_read(client, &byte, 1);
    if (result > 0 || wolfSSL_get_error(client, result) != WOLFSSL_ERROR_WANT_READ)
      wolf_fail(client, result, "client read after the handshake");
  }

  void keep_session(WOLFSSL* client) {
    wolfSSL_SESSION_free(session_);
    session_ = wolfSSL_get1_session(client);
    require(session_ != nullptr, "wolfSSL_get1_session");
  }

  WOLFSSL_CTX* server_ctx_;
  WOLFSSL_CTX* client_ctx_;
  bool client_no_dhe_;
  WOLFSSL_SESSION* session_ = nullptr;
  long tickets_ = 0;
  long connections_ = 0;
};

void run(const Options& options, const char* name, Settings settings, Expect expect) {
  if (!options.wants(name)) return;
  Bench bench(options, settings);
  ServerCost unused;
  if (expect.resumed) bench.connect(unused, {false, false});  // first ticket
  bench::run_row(options, name, [&](ServerCost& cost) { bench.connect(cost, expect); });
  std::printf("info %s tickets-per-connection=%.2f\n", name, bench.tickets_per_connection());
}

}  // namespace

int main(int argc, char** argv) {
  Options options = bench::parse_options(argc, argv);
  wolf_require(wolfSSL_Init(), "wolfSSL_Init");
  std::printf("library wolfSSL %s\n", wolfSSL_lib_version());
  run(options, "tls13-full", {}, {false, false});
  run(options, "tls13-resume", {}, {true, false});
  run(options, "tls13-resume-psk-ke", {.psk_ke = true}, {true, true});
  run(options, "tls13-full-cache-off", {.cache_off = true}, {false, false});
  run(options, "tls13-resume-cache-off", {.cache_off = true}, {true, false});
  wolfSSL_Cleanup();
  return 0;
}
