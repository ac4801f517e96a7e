// The greeting server over TLS: the same exchange as hello_server, after a
// TLS handshake. After tls::accept the connection reads and writes
// plaintext, and closing it sends close_notify; nothing else changes.
//
// Try it:
//   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30
//     -subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout key.pem -out cert.pem
//     (one line)
//   build/release/examples/tls_server cert.pem key.pem
//   echo hi | openssl s_client -connect 127.0.0.1:8443 -quiet
#include <fstream>
#include <iterator>

#include <salam/salam.hpp>

using namespace std::chrono_literals;
using Context = std::shared_ptr<const salam::tls::ServerContext>;

salam::Task<> greet(salam::Connection client, Context tls) {
  auto handshake = co_await salam::tls::accept(client, std::move(tls), 10s);
  if (!handshake) {
    salam::log::info("client {}: TLS handshake failed: {}", client.peer(), handshake.detail);
    co_return;
  }
  salam::log::info("client {} connected ({})", client.peer(), handshake.info.version);
  auto request = co_await client.read(1024, 10s);
  if (request) co_await client.write_all("Hello, client!", 10s);
}

std::string read_file(const char* path) {
  std::ifstream file(path);
  if (!file) throw std::runtime_error(std::string("cannot read ") + path);
  return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

int main(int argc, char** argv) try {
  if (argc < 3) {
    salam::log::critical("usage: tls_server CERTIFICATE.pem KEY.pem [ADDRESS]");
    return 2;
  }
  salam::tls::ServerSettings settings;
  settings.certificates = {{{read_file(argv[1]), argv[1]}, {read_file(argv[2]), argv[2]}}};
  const Context tls = salam::tls::ServerContext::create(settings);  // checked whole, or throws

  salam::Server server;
  server.listen({.address = argc > 3 ? argv[3] : "127.0.0.1:8443"},
                [tls](salam::Connection client) { return greet(std::move(client), tls); });
  return salam::run_until_signal(server);
} catch (const std::exception& e) {
  salam::log::critical("{}", e.what());
  return 1;
}
