// ClientLimits::admit() and the release that follows: a client already in
// the table, a stream of new clients evicting idle ones from a full table,
// and several threads at once (the stripes' mutexes under contention).
#include <cstdint>
#include <vector>

#include <arpa/inet.h>
#include <benchmark/benchmark.h>

#include <salam/client_limits.hpp>

namespace {

using namespace std::chrono_literals;

salam::SocketAddress nth_client(std::uint32_t i) {
  sockaddr_in raw{};
  raw.sin_family = AF_INET;
  raw.sin_addr.s_addr = htonl(0x0a000000u + i);
  return *salam::SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&raw), sizeof raw);
}

constexpr salam::ClientLimitOptions kOptions{
    .max_connections = 100, .rate = 1e9, .burst = 1e9, .max_clients = 100'000};

void BM_AdmitKnownClient(benchmark::State& state) {
  salam::ClientLimits limits(kOptions);
  const auto client = nth_client(1);
  const auto now = salam::Clock::now();
  for (auto _ : state)
    benchmark::DoNotOptimize(limits.admit(client, now));
}

void BM_AdmitNewClientsFullTable(benchmark::State& state) {
  salam::ClientLimits limits(kOptions);
  const auto now = salam::Clock::now();
  std::uint32_t next = 0;
  for (; next < 2 * kOptions.max_clients; ++next)
    (void)limits.admit(nth_client(next), now);
  std::vector<salam::SocketAddress> clients;
  for (std::uint32_t i = 0; i < (1 << 16); ++i)
    clients.push_back(nth_client(next + i));
  std::size_t at = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(limits.admit(clients[at], now));
    at = (at + 1) & (clients.size() - 1);
    if (at == 0) {  // new clients again, so every admission evicts
      next += static_cast<std::uint32_t>(clients.size());
      state.PauseTiming();
      for (std::uint32_t i = 0; i < clients.size(); ++i)
        clients[i] = nth_client(next + i);
      state.ResumeTiming();
    }
  }
}

salam::ClientLimits shared_limits(kOptions);

void BM_AdmitThreads(benchmark::State& state) {
  const auto now = salam::Clock::now();
  std::uint32_t i = static_cast<std::uint32_t>(state.thread_index()) * 1'000'000;
  for (auto _ : state)
    benchmark::DoNotOptimize(shared_limits.admit(nth_client(i++ % 50'000), now));
}

BENCHMARK(BM_AdmitKnownClient);
BENCHMARK(BM_AdmitNewClientsFullTable);
BENCHMARK(BM_AdmitThreads)->Threads(1)->Threads(2)->Threads(4);

}  // namespace
