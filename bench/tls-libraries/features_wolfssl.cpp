// Checks that Debian's wolfSSL build does what a salam server needs, over the
// same in-memory non-blocking transport as the benchmark: TLS 1.3 with X25519
// and an ECDSA P-256 chain, an SNI callback choosing the certificate, ALPN,
// client certificates checked against a CRL, and ticket resumption. Prints
// one line per check:
//   check NAME ok|FAIL DETAIL
// usage: features_wolfssl PKI_DIR (the files `run` makes; see README.md)
#include <string>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "common.hpp"

namespace {

using bench::Pipe;

int failures = 0;

void report(const char* name, bool ok, const std::string& detail) {
  std::printf("check %s %s %s\n", name, ok ? "ok" : "FAIL", detail.c_str());
  if (!ok) ++failures;
}

void must(bool ok, const char* what) {
  if (!ok) bench::fail("%s", what);
}

long would_block = 0;  // reads that found no data: the non-blocking path

struct Endpoint {
  WOLFSSL* ssl = nullptr;
  Pipe incoming;
  Pipe* outgoing = nullptr;
};

int receive(WOLFSSL*, char* data, int size, void* ctx) {
  std::size_t n = static_cast<Endpoint*>(ctx)->incoming.read(data, size);
  if (n > 0) return int(n);
  ++would_block;
  return WOLFSSL_CBIO_ERR_WANT_READ;
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

void set_suite_and_groups(WOLFSSL_CTX* ctx) {
  must(wolfSSL_CTX_set_cipher_list(ctx, "TLS13-AES128-GCM-SHA256") == WOLFSSL_SUCCESS,
       "cipher suite");
  int groups[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1};
  must(wolfSSL_CTX_set_groups(ctx, groups, 2) == WOLFSSL_SUCCESS, "groups");
}

void load_identity(WOLFSSL_CTX* ctx, const std::string& dir, const char* cert, const char* key) {
  must(wolfSSL_CTX_use_certificate_chain_file(ctx, (dir + "/" + cert).c_str()) == WOLFSSL_SUCCESS,
       cert);
  must(wolfSSL_CTX_use_PrivateKey_file(ctx, (dir + "/" + key).c_str(), WOLFSSL_FILETYPE_PEM) ==
           WOLFSSL_SUCCESS,
       key);
}

// The server's state: a default context and the one SNI selects.
struct Server {
  WOLFSSL_CTX* fallback = nullptr;   // CN=default.invalid
  WOLFSSL_CTX* localhost = nullptr;  // CN=localhost
  std::string sni_seen;
};

int on_sni(WOLFSSL* ssl, int*, void* arg) {
  auto* server = static_cast<Server*>(arg);
  const char* name = wolfSSL_get_servername(ssl, WOLFSSL_SNI_HOST_NAME);
  server->sni_seen = name ? name : "";
  if (server->sni_seen == "localhost" && wolfSSL_set_SSL_CTX(ssl, server->localhost) == nullptr)
    return 2;  // SSL_TLSEXT_ERR_ALERT_FATAL
  return 0;    // SSL_TLSEXT_ERR_OK
}

int on_alpn(WOLFSSL*, const unsigned char** out, unsigned char* out_size,
            const unsigned char* offered, unsigned int offered_size, void*) {
  static const unsigned char ours[] = "\x08http/1.1";
  unsigned char* chosen = nullptr;
  if (wolfSSL_select_next_proto(&chosen, out_size, ours, sizeof ours - 1, offered, offered_size) !=
      1)
    return 3;  // SSL_TLSEXT_ERR_NOACK
  *out = chosen;
  return 0;
}

WOLFSSL_CTX* server_ctx(const std::string& dir, const char* cert, const char* key, Server* server) {
  WOLFSSL_CTX* ctx = wolfSSL_CTX_new(wolfTLSv1_3_server_method());
  must(ctx != nullptr, "server context");
  set_suite_and_groups(ctx);
  load_identity(ctx, dir, cert, key);
  must(
      wolfSSL_CTX_load_verify_locations(ctx, (dir + "/ca.pem").c_str(), nullptr) == WOLFSSL_SUCCESS,
      "client CA");
  wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  must(wolfSSL_CTX_EnableCRL(ctx, WOLFSSL_CRL_CHECKALL) == WOLFSSL_SUCCESS, "EnableCRL");
  must(wolfSSL_CTX_LoadCRLFile(ctx, (dir + "/crl.pem").c_str(), WOLFSSL_FILETYPE_PEM) ==
           WOLFSSL_SUCCESS,
       "LoadCRLFile");
  wolfSSL_CTX_set_alpn_select_cb(ctx, on_alpn, nullptr);
  wolfSSL_CTX_set_servername_callback(ctx, on_sni);
  must(wolfSSL_CTX_set_servername_arg(ctx, server) == WOLFSSL_SUCCESS, "servername arg");
  return ctx;
}

WOLFSSL_CTX* client_ctx(const std::string& dir, const char* cert, const char* key) {
  WOLFSSL_CTX* ctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
  must(ctx != nullptr, "client context");
  set_suite_and_groups(ctx);
  must(
      wolfSSL_CTX_load_verify_locations(ctx, (dir + "/ca.pem").c_str(), nullptr) == WOLFSSL_SUCCESS,
      "server CA");
  wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, nullptr);
  if (cert) load_identity(ctx, dir, cert, key);
  return ctx;
}

struct Outcome {
  bool done = false;
  int server_error = 0;
  int client_error = 0;
};

// One handshake call; the error code if it failed for good, else 0.
int step(WOLFSSL* ssl, bool server, bool& done) {
  int result = server ? wolfSSL_accept(ssl) : wolfSSL_connect(ssl);
  if (result == WOLFSSL_SUCCESS) {
    done = true;
    return 0;
  }
  int error = wolfSSL_get_error(ssl, result);
  return error == WOLFSSL_ERROR_WANT_READ ? 0 : error;
}

Outcome handshake(Endpoint& server, Endpoint& client) {
  Outcome out;
  bool client_done = false, server_done = false;
  for (int flight = 0; flight < 10 && !(client_done && server_done); ++flight) {
    if (!client_done && (out.client_error = step(client.ssl, false, client_done))) break;
    if (!server_done && (out.server_error = step(server.ssl, true, server_done))) break;
  }
  out.done = client_done && server_done;
  if (out.done) {  // the client takes in its ticket
    char byte;
    wolfSSL_read(client.ssl, &byte, 1);
  }
  return out;
}

std::string error_text(int error) {
  char text[WOLFSSL_MAX_ERROR_SZ];
  wolfSSL_ERR_error_string_n(error, text, sizeof text);
  return std::to_string(error) + " " + text;
}

std::string describe(const Outcome& out) {
  if (out.done) return "handshake completed";
  return "server: " + (out.server_error ? error_text(out.server_error) : "-") +
         "; client: " + (out.client_error ? error_text(out.client_error) : "-");
}

std::string alpn(WOLFSSL* ssl) {
  char* name = nullptr;
  unsigned short size = 0;
  if (wolfSSL_ALPN_GetProtocol(ssl, &name, &size) != WOLFSSL_SUCCESS) return "";
  return std::string(name, size);
}

std::string peer_subject(WOLFSSL* ssl) {
  WOLFSSL_X509* peer = wolfSSL_get_peer_certificate(ssl);
  if (!peer) return "";
  char text[256] = "";
  wolfSSL_X509_NAME_oneline(wolfSSL_X509_get_subject_name(peer), text, sizeof text);
  wolfSSL_X509_free(peer);
  return text;
}

struct Connection {
  Endpoint server, client;
  Outcome outcome;

  ~Connection() {
    wolfSSL_free(server.ssl);
    wolfSSL_free(client.ssl);
  }
};

void connect(Server& server, WOLFSSL_CTX* client_ctx, Connection& c,
             WOLFSSL_SESSION* resume = nullptr) {
  c.server.ssl = wolfSSL_new(server.fallback);
  c.client.ssl = wolfSSL_new(client_ctx);
  must(c.server.ssl && c.client.ssl, "wolfSSL_new");
  attach(c.server, c.client);
  attach(c.client, c.server);
  WOLFSSL* ssl = c.client.ssl;
  must(wolfSSL_UseSNI(ssl, WOLFSSL_SNI_HOST_NAME, "localhost", 9) == WOLFSSL_SUCCESS &&
           wolfSSL_check_domain_name(ssl, "localhost") == WOLFSSL_SUCCESS &&
           wolfSSL_UseKeyShare(ssl, WOLFSSL_ECC_X25519) == WOLFSSL_SUCCESS,
       "client settings");
  char protocols[] = "h2,http/1.1";
  must(wolfSSL_UseALPN(ssl, protocols, sizeof protocols - 1, WOLFSSL_ALPN_CONTINUE_ON_MISMATCH) ==
           WOLFSSL_SUCCESS,
       "client ALPN");
  if (resume) must(wolfSSL_set_session(ssl, resume) == WOLFSSL_SUCCESS, "set_session");
  c.outcome = handshake(c.server, c.client);
}

WOLFSSL_SESSION* check_good_client(Server& server, WOLFSSL_CTX* client) {
  Connection c;
  long blocked_before = would_block;
  connect(server, client, c);
  WOLFSSL* s = c.server.ssl;
  const char* cipher = wolfSSL_get_cipher_name(s);
  const char* curve = wolfSSL_get_curve_name(s);
  bool tls13 = c.outcome.done && wolfSSL_version(s) == TLS1_3_VERSION && cipher &&
               std::string(cipher) == "TLS13-AES128-GCM-SHA256" && curve &&
               std::string(curve) == "X25519";
  report("tls13-x25519-ecdsa-p256", tls13, describe(c.outcome));
  report("nonblocking-custom-io", c.outcome.done && would_block > blocked_before,
         "wolfSSL_SSLSetIORecv/Send over memory; " + std::to_string(would_block - blocked_before) +
             " reads returned WOLFSSL_CBIO_ERR_WANT_READ");
  report("sni-selects-certificate", c.outcome.done && server.sni_seen == "localhost",
         "servername callback saw '" + server.sni_seen +
             "' and switched with wolfSSL_set_SSL_CTX; the client verified");
  report("alpn", alpn(s) == "http/1.1" && alpn(c.client.ssl) == "http/1.1",
         "client offered h2,http/1.1; server callback chose '" + alpn(s) + "'");
  std::string subject = peer_subject(s);
  report("client-certificate-verified",
         c.outcome.done && subject.find("CN=client") != std::string::npos,
         "server saw '" + subject + "'");
  return wolfSSL_get1_session(c.client.ssl);
}

void check_resumption(Server& server, WOLFSSL_CTX* client, WOLFSSL_SESSION* session) {
  Connection c;
  connect(server, client, c, session);
  bool ok = c.outcome.done && wolfSSL_session_reused(c.server.ssl) &&
            wolfSSL_session_reused(c.client.ssl);
  report("ticket-resumption", ok, describe(c.outcome) + (ok ? ", resumed" : ", not resumed"));
}

void check_rejected(const char* name, Server& server, WOLFSSL_CTX* client, int expected_error) {
  Connection c;
  connect(server, client, c);
  bool ok = !c.outcome.done && c.outcome.server_error != 0 &&
            (expected_error == 0 || c.outcome.server_error == expected_error);
  report(name, ok, describe(c.outcome));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) bench::fail("usage: %s PKI_DIR", argv[0]);
  std::string dir = argv[1];
  must(wolfSSL_Init() == WOLFSSL_SUCCESS, "wolfSSL_Init");
  std::printf("library wolfSSL %s\n", wolfSSL_lib_version());

  Server server;
  server.fallback = server_ctx(dir, "default.pem", "default.key", &server);
  server.localhost = server_ctx(dir, "server.pem", "server.key", &server);
  WOLFSSL_CTX* good = client_ctx(dir, "client.pem", "client.key");
  WOLFSSL_CTX* revoked = client_ctx(dir, "revoked.pem", "revoked.key");
  WOLFSSL_CTX* none = client_ctx(dir, nullptr, nullptr);

  WOLFSSL_SESSION* session = check_good_client(server, good);
  check_resumption(server, good, session);
  check_rejected("revoked-client-certificate-rejected", server, revoked, CRL_CERT_REVOKED);
  check_rejected("missing-client-certificate-rejected", server, none, 0);

  wolfSSL_SESSION_free(session);
  for (WOLFSSL_CTX* ctx : {server.fallback, server.localhost, good, revoked, none})
    wolfSSL_CTX_free(ctx);
  wolfSSL_Cleanup();
  return failures ? 1 : 0;
}
