// A greeting server for tests that need a separate process (descriptor
// limits, signals): the protocol of examples/hello_server.cpp with the
// knobs a test needs. Prints "port N" on stdout once listening.
//
//   greet_server [--backend B] [--threads N] [--nofile N] [--read-timeout-ms N] [--listen ADDR]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <sys/resource.h>

#include <salam/salam.hpp>

using namespace std::chrono_literals;

salam::Task<> greet(salam::Connection client, salam::Duration read_timeout) {
  salam::log::info("client {} connected", client.peer());
  auto request = co_await client.read(1024, read_timeout);
  if (request) co_await client.write_all("Hello, client!", 10s);
}

int main(int argc, char** argv) {
  salam::ServerOptions options;
  std::string address = "127.0.0.1:0";
  salam::Duration read_timeout = 10s;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    const char* value = argv[i + 1];
    if (flag == "--backend") {
      options.loop.backend = salam::parse_backend_kind(value);
    } else if (flag == "--threads") {
      options.threads = static_cast<unsigned>(std::atoi(value));
    } else if (flag == "--nofile") {
      rlimit limit{};
      limit.rlim_cur = limit.rlim_max = static_cast<rlim_t>(std::atoi(value));
      if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
        std::perror("setrlimit");
        return 2;
      }
    } else if (flag == "--read-timeout-ms") {
      read_timeout = std::chrono::milliseconds(std::atoi(value));
    } else if (flag == "--listen") {
      address = value;
    } else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  salam::Server server(options);
  server.listen({.address = address}, [read_timeout](salam::Connection client) {
    return greet(std::move(client), read_timeout);
  });
  std::printf("port %u\n", server.local_socket_address(0).port());
  std::fflush(stdout);
  return salam::run_until_signal(server, 2s);
}
