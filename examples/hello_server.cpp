// The tutorial's greeting server, on libsalam: listen on 127.0.0.1:8888,
// log each client, read whatever it sends first (up to 1024 bytes), reply
// "Hello, client!" and close. Unlike the tutorial's loop it serves every
// client at once, on every CPU, and a silent client cannot hold up others.
//
// Try it:  build/release/examples/hello_server
//          echo hi | nc -q1 127.0.0.1 8888
#include <salam/salam.hpp>

using namespace std::chrono_literals;

salam::Task<> greet(salam::Connection client) {
  salam::log::info("client {} connected", client.peer());
  auto request = co_await client.read(1024, 10s);  // what arrives first, if anything
  if (request) co_await client.write_all("Hello, client!", 10s);
}  // the connection closes here; the engine makes sure an RST cannot destroy the reply

int main() try {
  salam::Server server;
  server.listen({.address = "127.0.0.1:8888"}, greet);
  return salam::run_until_signal(server);
} catch (const std::exception& e) {
  salam::log::critical("{}", e.what());  // e.g. "cannot listen on 127.0.0.1:8888: Address in use"
  return 1;
}
