// A periodic task on every shard, and a count kept across shards: a banner
// server that counts the clients it greets. Each shard counts its own
// clients in memory no other shard writes (a thread_local: a shard is a
// thread), and once a second its shard task adds them to the total, which
// shard 0 then logs. The greeting path touches no shared cache line.
//
// Try it:  build/release/examples/ticker [port] [period-ms]
//          nc 127.0.0.1 8891      (prints: Hello, client!)
#include <atomic>
#include <cstdint>
#include <string>

#include <salam/salam.hpp>

using namespace std::chrono_literals;

thread_local std::uint64_t greeted_here = 0;  // this shard's, since its last tick
std::atomic<std::uint64_t> greeted_total = 0;

salam::Task<> greet(salam::Connection client) {
  // Named first: GCC 12 miscompiles a co_await in an if condition (docs/guide.md).
  std::error_code error = co_await client.write_all("Hello, client!\n", 5s);
  if (!error) ++greeted_here;
}

salam::Task<> tick(salam::ShardContext shard, std::chrono::milliseconds period) {
  for (;;) {
    const bool stopping = co_await shard.wait_for_stop(period);
    greeted_total += std::exchange(greeted_here, 0);
    if (stopping) break;
    if (shard.index() == 0) salam::log::info("clients greeted: {}", greeted_total.load());
  }
}

int main(int argc, char** argv) try {
  const std::string port = argc > 1 ? argv[1] : "8891";
  const std::chrono::milliseconds period(argc > 2 ? std::stoi(argv[2]) : 1000);
  salam::Server server;
  server.listen({.address = "127.0.0.1:" + port}, greet);
  server.on_each_shard([period](salam::ShardContext shard) { return tick(shard, period); });
  const int status = salam::run_until_signal(server);
  salam::log::info("clients greeted in all: {}", greeted_total.load());
  return status;
} catch (const std::exception& e) {
  salam::log::critical("{}", e.what());
  return 1;
}
