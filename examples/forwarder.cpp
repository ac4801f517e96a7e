// A TCP forwarder: every client is connected to a target server and the
// bytes are copied both ways, with half-close passed on in each direction
// (a client that shuts down its sending side still gets the whole reply).
// An error in either direction ends both: close() cancels the other task's
// read or write.
//
// Try it:  build/release/examples/hello_server &
//          build/release/examples/forwarder 127.0.0.1:9000 127.0.0.1:8888
//          echo hi | nc -q1 127.0.0.1 9000       (prints: Hello, client!)
#include <salam/salam.hpp>

using namespace std::chrono_literals;

// Copies `from` to `to` until `from` ends.
salam::Task<> pipe(salam::Connection& from, salam::Connection& to) {
  for (;;) {
    auto input = co_await from.read(64 * 1024, 5min);
    if (input && input->empty()) {  // end of file: pass it on; the other way goes on
      (void)to.shutdown_write();
      co_return;
    }
    if (!input) break;
    if (auto error = co_await to.write_all(input->bytes(), 1min)) break;
  }
  from.close();  // an error: end the other direction too
  to.close();
}

salam::Task<> forward(salam::Connection client, salam::SocketAddress target) {
  auto upstream = co_await salam::connect(client.loop(), target, 5s);
  if (!upstream) co_return;  // the client is closed when its Connection goes
  salam::TaskScope both;
  both.spawn(pipe(client, *upstream));
  both.spawn(pipe(*upstream, client));
  co_await both.join();
}

int main(int argc, char** argv) try {
  if (argc != 3) throw std::invalid_argument("usage: forwarder LISTEN-ADDRESS TARGET-ADDRESS");
  const auto target = salam::SocketAddress::parse(argv[2]);
  salam::Server server;
  server.listen({.address = argv[1]},
                [target](salam::Connection client) { return forward(std::move(client), target); });
  return salam::run_until_signal(server);
} catch (const std::exception& e) {
  salam::log::critical("{}", e.what());
  return 1;
}
