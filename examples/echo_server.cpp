// An echo server with an idle timeout: sends back whatever a client sends,
// and closes a client that sends nothing for 10 s. Listens on
// 127.0.0.1:8889; a port and an idle timeout in seconds may be given.
//
// Try it:  build/release/examples/echo_server [port] [idle-seconds]
//          nc 127.0.0.1 8889      (type lines; stay silent 10 s to be closed)
#include <string>

#include <salam/salam.hpp>

salam::Task<> echo(salam::Connection client, std::chrono::seconds idle) {
  for (;;) {
    auto input = co_await client.read(64 * 1024, idle);
    if (!input && input.error() == salam::timed_out())
      salam::log::info("client {} idle for {} s: closing", client.peer(), idle.count());
    if (!input || input->empty()) break;  // idle, failed, or the client closed its side
    if (co_await client.write_all(input->bytes(), idle)) break;
  }
}

int main(int argc, char** argv) try {
  const std::string port = argc > 1 ? argv[1] : "8889";
  const std::chrono::seconds idle(argc > 2 ? std::stoi(argv[2]) : 10);
  salam::Server server;
  // Not a coroutine itself: it passes `idle` to echo's frame by value.
  server.listen({.address = "127.0.0.1:" + port},
                [idle](salam::Connection client) { return echo(std::move(client), idle); });
  return salam::run_until_signal(server);
} catch (const std::exception& e) {
  salam::log::critical("{}", e.what());  // e.g. the port is taken
  return 1;
}
