// An asio server with C++20 coroutines, as a C++ developer would write it
// (after asio's own cpp20/coroutines/echo_server.cpp): one coroutine per
// connection on a single-threaded io_context.
//
// Usage: asio_server PORT [greet|banner|echo|discard]
// Try it: asio_server 9000 & echo hi | nc -q1 127.0.0.1 9000
#include <cstdio>
#include <cstdlib>
#include <string>

#include <asio.hpp>

using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;

namespace {

enum class Mode { greet, banner, echo, discard };

constexpr char kGreeting[] = "Hello, client!";

awaitable<void> serve(tcp::socket socket, Mode mode) {
  try {
    char data[16384];
    if (mode == Mode::greet) {
      co_await socket.async_read_some(asio::buffer(data, 1024), use_awaitable);
    }
    if (mode == Mode::greet || mode == Mode::banner) {
      co_await asio::async_write(socket, asio::buffer(kGreeting, sizeof kGreeting - 1),
                                 use_awaitable);
      co_return;
    }
    for (;;) {
      std::size_t n = co_await socket.async_read_some(asio::buffer(data), use_awaitable);
      if (mode == Mode::echo)
        co_await asio::async_write(socket, asio::buffer(data, n), use_awaitable);
    }
  } catch (const std::exception&) {  // end of file or a reset: the connection is over
  }
}

awaitable<void> listen(tcp::acceptor acceptor, Mode mode) {
  for (;;) {
    tcp::socket socket = co_await acceptor.async_accept(use_awaitable);
    asio::co_spawn(acceptor.get_executor(), serve(std::move(socket), mode), asio::detached);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s PORT [greet|banner|echo|discard]\n", argv[0]);
    return 2;
  }
  const std::string name = argc > 2 ? argv[2] : "greet";
  const Mode mode = name == "banner"    ? Mode::banner
                    : name == "echo"    ? Mode::echo
                    : name == "discard" ? Mode::discard
                                        : Mode::greet;
  asio::io_context context(1);
  tcp::acceptor acceptor(context);
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"),
                               static_cast<unsigned short>(std::atoi(argv[1])));
  acceptor.open(endpoint.protocol());
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(4096);
  asio::co_spawn(context, listen(std::move(acceptor), mode), asio::detached);
  context.run();
}
