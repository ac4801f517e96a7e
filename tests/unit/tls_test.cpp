// The TLS layer on both backends: contexts are checked whole when built;
// a handshake leaves plaintext reads and writes on the connection; SNI
// chooses the certificate; sessions resume, but only under the
// certificate, name and verification they were made under; close() ends
// with close_notify.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <salam/connection.hpp>
#include <salam/loop.hpp>
#include <salam/scope.hpp>
#include <salam/tls.hpp>

#include "../support/backends.hpp"
#include "../support/certificates.hpp"
#include "engine.hpp"

namespace salam {
namespace {

using namespace std::chrono_literals;
using testing::CertificateRequest;
using testing::issue;
using testing::Issued;

struct Ends {
  Connection server;
  Connection client;
};

Ends connected_ends(Loop& loop) {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  if (detail::Engine::socket_flags(loop) != 0) {
    for (int fd : fds)
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  return Ends{Connection(loop, FileDescriptor(fds[0])), Connection(loop, FileDescriptor(fds[1]))};
}

struct Pki {
  Issued ca = issue({.common_name = "test CA", .dns_names = {}, .is_ca = true});
  Issued alpha = issue({.common_name = "alpha.test", .dns_names = {"alpha.test", "a2.test"}}, &ca);
  Issued beta = issue({.common_name = "beta.test", .dns_names = {"*.beta.test"}}, &ca);
  Issued client = issue({.common_name = "client one", .dns_names = {}}, &ca);
};

const Pki& pki() {
  static const Pki made;
  return made;
}

tls::CertificateSource source(const Issued& issued, std::string name = "cert.pem") {
  return {{issued.certificate + issued.key, std::move(name)}, {}};
}

tls::ServerSettings two_hosts() {
  tls::ServerSettings settings;
  settings.certificates = {source(pki().alpha, "alpha.pem"), source(pki().beta, "beta.pem")};
  return settings;
}

std::shared_ptr<const tls::ClientContext> client_context(bool with_certificate = false) {
  tls::ClientSettings settings;
  settings.ca = {pki().ca.certificate, "ca.pem"};
  if (with_certificate) settings.certificate = source(pki().client, "client.pem");
  return tls::ClientContext::create(settings);
}

std::string build_error(const tls::ServerSettings& settings) {
  try {
    tls::ServerContext::create(settings);
  } catch (const tls::Error& e) {
    return e.what();
  }
  return "";
}

TEST(TlsContextTest, RefusesWhatCannotServe) {
  tls::ServerSettings settings;
  EXPECT_NE(build_error(settings).find("needs a certificate"), std::string::npos);

  settings.certificates = {{{"not PEM at all", "junk.pem"}, {}}};
  EXPECT_NE(build_error(settings).find("junk.pem: no certificate"), std::string::npos);

  // Half-written: the file ends in the middle of the certificate.
  const std::string& whole = pki().alpha.certificate;
  settings.certificates = {{{whole.substr(0, whole.size() / 2), "half.pem"}, {}}};
  EXPECT_NE(build_error(settings).find("half.pem"), std::string::npos);

  settings.certificates = {{{pki().alpha.certificate, "alpha.pem"}, {pki().beta.key, "beta.key"}}};
  EXPECT_NE(build_error(settings).find("does not match"), std::string::npos);

  const Issued expired = issue(
      {.valid_from = std::chrono::hours(-48), .valid_until = std::chrono::hours(-1)}, &pki().ca);
  settings.certificates = {source(expired, "old.pem")};
  EXPECT_NE(build_error(settings).find("old.pem: the certificate expired on"), std::string::npos);

  // The chain backwards: the CA first.
  settings.certificates = {
      {{pki().ca.certificate + pki().alpha.certificate, "backwards.pem"}, {pki().alpha.key, "k"}}};
  EXPECT_NE(build_error(settings).find("out of order"), std::string::npos);

  settings = two_hosts();
  settings.client_verify = tls::ClientVerify::required;
  EXPECT_NE(build_error(settings).find("needs the CAs"), std::string::npos);

  settings = two_hosts();
  settings.ciphers = "NOT-A-CIPHER";
  EXPECT_NE(build_error(settings).find("bad TLS 1.2 cipher list"), std::string::npos);
  settings = two_hosts();
  settings.groups = "P-999";
  EXPECT_NE(build_error(settings).find("bad TLS groups"), std::string::npos);
}

TEST(TlsContextTest, WarnsOfCertificatesExpiringSoon) {
  tls::ServerSettings settings;
  settings.certificates = {
      source(issue({.valid_until = std::chrono::hours(24 * 5)}, &pki().ca), "soon.pem")};
  auto context = tls::ServerContext::create(settings);
  ASSERT_EQ(context->warnings().size(), 1u);
  EXPECT_NE(context->warnings()[0].find("soon.pem: the certificate expires on"), std::string::npos);
  EXPECT_TRUE(tls::ServerContext::create(two_hosts())->warnings().empty());
}

class TlsTest : public testing::LoopBackendTest {};

struct Exchange {
  tls::Handshake server;
  tls::Handshake client;
  std::string received;  // what the client read back
  std::shared_ptr<const tls::SavedSession> session;
};

Task<> serve_echo(Connection& connection, std::shared_ptr<const tls::ServerContext> context,
                  tls::Handshake& outcome) {
  outcome = co_await tls::accept(connection, std::move(context), Deadline(5s));
  if (!outcome) {
    connection.close();
    co_return;
  }
  auto input = co_await connection.read(1024, Deadline(5s));
  if (input && !input->empty()) (void)co_await connection.write_all(input->bytes(), Deadline(5s));
  connection.close();
}

Task<> talk(Connection& connection, std::string name,
            std::shared_ptr<const tls::SavedSession> resume, Exchange& exchange,
            std::shared_ptr<const tls::ClientContext> context) {
  exchange.client = co_await tls::connect(connection, std::move(context), std::move(name),
                                          Deadline(5s), std::move(resume));
  if (exchange.client && !co_await connection.write_all("hello over TLS", Deadline(5s))) {
    for (;;) {
      auto input = co_await connection.read(1024, Deadline(5s));
      if (!input || input->empty()) break;
      exchange.received += input->text();
    }
    exchange.session = tls::saved_session(connection);
  }
  // The server may linger until this end closes too.
  connection.close();
}

Exchange run_exchange(Loop& loop, std::shared_ptr<const tls::ServerContext> server,
                      std::string name, std::shared_ptr<const tls::SavedSession> resume = nullptr,
                      std::shared_ptr<const tls::ClientContext> client = nullptr) {
  Exchange exchange;
  Ends ends = connected_ends(loop);
  loop.spawn(serve_echo(ends.server, std::move(server), exchange.server));
  loop.run(talk(ends.client, std::move(name), std::move(resume), exchange,
                client ? std::move(client) : client_context()));
  return exchange;
}

TEST_P(TlsTest, EchoesOverTlsAndEndsWithCloseNotify) {
  Loop loop(options());
  const auto context = tls::ServerContext::create(two_hosts());
  const Exchange exchange = run_exchange(loop, context, "alpha.test");
  ASSERT_TRUE(exchange.server) << exchange.server.error.message() << ": " << exchange.server.detail;
  ASSERT_TRUE(exchange.client) << exchange.client.detail;
  // The client read to a clean end: close_notify, not a truncation.
  EXPECT_EQ(exchange.received, "hello over TLS");
  EXPECT_EQ(exchange.server.info.version, "TLSv1.3");
  EXPECT_EQ(exchange.server.info.server_name, "alpha.test");
  EXPECT_FALSE(exchange.server.info.resumed);
  EXPECT_NE(exchange.client.info.peer_subject.find("CN=alpha.test"), std::string::npos);
}

TEST_P(TlsTest, ChoosesTheCertificateByName) {
  Loop loop(options());
  const auto context = tls::ServerContext::create(two_hosts());
  EXPECT_NE(
      run_exchange(loop, context, "www.beta.test").client.info.peer_subject.find("CN=beta.test"),
      std::string::npos);
  EXPECT_NE(run_exchange(loop, context, "a2.test").client.info.peer_subject.find("CN=alpha.test"),
            std::string::npos);
  // Unknown names get the first certificate, unless SNI is strict.
  EXPECT_NE(run_exchange(loop, context, "").client.info.peer_subject.find("CN=alpha.test"),
            std::string::npos);
  tls::ServerSettings strict = two_hosts();
  strict.sni = tls::SniMode::strict;
  const Exchange refused = run_exchange(loop, tls::ServerContext::create(strict), "other.test");
  EXPECT_EQ(refused.server.error, tls::tls_failure());
  EXPECT_FALSE(refused.client);
}

TEST_P(TlsTest, ResumesOnlyUnderTheSameCertificateNameAndVerification) {
  Loop loop(options());
  const auto keys = tls::make_ticket_keys();
  const auto context = tls::ServerContext::create(two_hosts(), keys);
  const Exchange first = run_exchange(loop, context, "alpha.test");
  ASSERT_TRUE(first.session) << "no ticket arrived";
  const Exchange second = run_exchange(loop, context, "alpha.test", first.session);
  EXPECT_TRUE(second.server.info.resumed);
  ASSERT_TRUE(second.session);
  // Another context with the same settings and keys (a reload) honours
  // the latest ticket.
  const auto reloaded = tls::ServerContext::create(two_hosts(), keys);
  EXPECT_TRUE(run_exchange(loop, reloaded, "alpha.test", second.session).server.info.resumed);
  // The same certificate under another of its names: not resumed.
  EXPECT_FALSE(run_exchange(loop, context, "a2.test", first.session).server.info.resumed);
  // Another certificate's name: not resumed.
  EXPECT_FALSE(run_exchange(loop, context, "x.beta.test", first.session).server.info.resumed);
  // Other keys (another process): not resumed.
  EXPECT_FALSE(
      run_exchange(loop, tls::ServerContext::create(two_hosts()), "alpha.test", first.session)
          .server.info.resumed);
  // Client certificates now required: a session made without one must not
  // let the client in without one.
  tls::ServerSettings verified = two_hosts();
  verified.client_verify = tls::ClientVerify::required;
  verified.client_ca = {pki().ca.certificate, "ca.pem"};
  const auto strict = tls::ServerContext::create(verified, keys);
  const Exchange sneaking = run_exchange(loop, strict, "alpha.test", first.session);
  EXPECT_FALSE(sneaking.server);
  EXPECT_FALSE(sneaking.server.info.resumed);
  const Exchange with_certificate =
      run_exchange(loop, strict, "alpha.test", nullptr, client_context(true));
  ASSERT_TRUE(with_certificate.server) << with_certificate.server.detail;
  EXPECT_NE(with_certificate.server.info.peer_subject.find("CN=client one"), std::string::npos);
}

// One task reads while another writes, as on a plain connection: the
// layer's own sends (the ticket, after the handshake) never make a
// handler's write fail as busy.
Task<> read_until_end(Connection& connection, std::size_t& received) {
  for (;;) {
    auto input = co_await connection.read(64 * 1024, Deadline(5s));
    if (!input || input->empty()) break;
    received += input->size();
  }
}

Task<> write_blocks(Connection& connection, std::error_code& error) {
  const std::vector<std::byte> block(100 * 1000, std::byte{'x'});
  for (int i = 0; i < 3 && !error; ++i)
    error = co_await connection.write_all(block, Deadline(5s));
  connection.close();
}

Task<> serve_both_ways(Connection& connection, std::shared_ptr<const tls::ServerContext> context,
                       std::error_code& error, std::size_t& received) {
  const tls::Handshake handshake =
      co_await tls::accept(connection, std::move(context), Deadline(5s));
  if (!handshake) {
    error = handshake.error;
    co_return;
  }
  TaskScope both;
  both.spawn(read_until_end(connection, received));
  both.spawn(write_blocks(connection, error));
  co_await both.join();
}

Task<> client_both_ways(Connection& connection, std::size_t& received) {
  if (!co_await tls::connect(connection, client_context(), "alpha.test", Deadline(5s))) co_return;
  (void)co_await connection.write_all("some input", Deadline(5s));
  for (;;) {
    auto input = co_await connection.read(64 * 1024, Deadline(5s));
    if (!input || input->empty()) break;
    received += input->size();
  }
  connection.close();
}

TEST_P(TlsTest, OneTaskReadsWhileAnotherWrites) {
  Loop loop(options());
  Ends ends = connected_ends(loop);
  std::error_code error;
  std::size_t server_received = 0;
  std::size_t client_received = 0;
  loop.spawn(serve_both_ways(ends.server, tls::ServerContext::create(two_hosts()), error,
                             server_received));
  loop.run(client_both_ways(ends.client, client_received));
  EXPECT_FALSE(error) << error.message();
  EXPECT_EQ(client_received, 300u * 1000);
  EXPECT_EQ(server_received, 10u);
}

TEST_P(TlsTest, PlaintextToATlsPeerFailsWithAReason) {
  Loop loop(options());
  const auto context = tls::ServerContext::create(two_hosts());
  Ends ends = connected_ends(loop);
  tls::Handshake outcome;
  loop.spawn(serve_echo(ends.server, context, outcome));
  auto send_plaintext = [](Connection& c) -> Task<> {
    (void)co_await c.write_all("GET / HTTP/1.1\r\nHost: x\r\n\r\n", Deadline(5s));
    (void)co_await c.read(1024, Deadline(5s));
  };
  loop.run(send_plaintext(ends.client));
  EXPECT_EQ(outcome.error, tls::tls_failure());
  EXPECT_EQ(outcome.detail, "http request");
}

SALAM_INSTANTIATE_FOR_BACKENDS(TlsTest);

}  // namespace
}  // namespace salam
