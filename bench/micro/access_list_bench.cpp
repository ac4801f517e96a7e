// AccessList::check() against lists of 10, 1,000 and 100,000 random rules,
// IPv4 and IPv6, and the cost of compiling (and parsing) such lists.
//
// Lookups cycle through a set of addresses larger than the caches at the
// biggest size would favour, half of them inside some rule.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <benchmark/benchmark.h>

#include <salam/access_list.hpp>

namespace {

using Number = unsigned __int128;

std::string prefix_text(Number number, int length, bool v4) {
  char text[INET6_ADDRSTRLEN];
  if (v4) {
    in_addr raw{htonl(static_cast<std::uint32_t>(number))};
    ::inet_ntop(AF_INET, &raw, text, sizeof text);
  } else {
    in6_addr raw;
    for (int i = 15; i >= 0; --i, number >>= 8)
      raw.s6_addr[i] = static_cast<std::uint8_t>(number);
    ::inet_ntop(AF_INET6, &raw, text, sizeof text);
  }
  return std::string(text) + "/" + std::to_string(length);
}

Number random_number(std::mt19937_64& random, bool v4) {
  if (v4) return random() & 0xffffffffu;
  return (Number{0x2001} << 112) | (Number{random() & 0xffffffffffffu} << 64) | random();
}

// Prefixes of /16 to /32 (IPv4) or /32 to /128 (IPv6), host bits cleared.
std::string random_rules(std::size_t count, bool v4, std::uint64_t seed) {
  std::mt19937_64 random(seed);
  const int bits = v4 ? 32 : 128;
  std::string text;
  for (std::size_t i = 0; i < count; ++i) {
    const int length = static_cast<int>(random() % (bits / 2 + 1)) + bits / 2;
    Number number = random_number(random, v4);
    if (length < bits) number &= ~((Number{1} << (bits - length)) - 1);
    text += (random() % 2 ? "allow " : "deny ") + prefix_text(number, length, v4) + "\n";
  }
  return text;
}

std::vector<salam::SocketAddress> random_addresses(std::size_t count, bool v4,
                                                   const std::vector<salam::AccessRule>& rules,
                                                   std::uint64_t seed) {
  std::mt19937_64 random(seed);
  std::vector<salam::SocketAddress> addresses;
  for (std::size_t i = 0; i < count; ++i) {
    // Every other address inside a rule, so both outcomes are exercised.
    Number number = random_number(random, v4);
    if (i % 2 == 0) {
      const auto& prefix = rules[random() % rules.size()].prefix;
      number = prefix.first() + (number % (prefix.last() - prefix.first() + 1));
    }
    if (v4) number &= 0xffffffffu;  // an IPv4 rule's numbers are mapped
    std::string text = prefix_text(number, 0, v4);
    text.resize(text.find('/'));
    addresses.push_back(*salam::SocketAddress::from_ip(text, 0));
  }
  return addresses;
}

void BM_Check(benchmark::State& state, bool v4) {
  const auto count = static_cast<std::size_t>(state.range(0));
  const auto rules = salam::AccessList::parse_rules(random_rules(count, v4, count), "bench");
  const salam::AccessList list(rules, salam::Access::deny);
  const auto addresses = random_addresses(1 << 14, v4, rules, 7);
  std::size_t next = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(list.check(addresses[next]));
    next = (next + 1) & (addresses.size() - 1);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Build(benchmark::State& state, bool v4) {
  const auto count = static_cast<std::size_t>(state.range(0));
  const auto rules = salam::AccessList::parse_rules(random_rules(count, v4, count), "bench");
  for (auto _ : state) {
    salam::AccessList list(rules, salam::Access::deny);
    benchmark::DoNotOptimize(list);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(count));
}

void BM_Parse(benchmark::State& state, bool v4) {
  const auto count = static_cast<std::size_t>(state.range(0));
  const std::string text = random_rules(count, v4, count);
  for (auto _ : state)
    benchmark::DoNotOptimize(salam::AccessList::parse_rules(text, "bench"));
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(count));
}

BENCHMARK_CAPTURE(BM_Check, v4, true)->Arg(10)->Arg(1000)->Arg(100'000);
BENCHMARK_CAPTURE(BM_Check, v6, false)->Arg(10)->Arg(1000)->Arg(100'000);
BENCHMARK_CAPTURE(BM_Build, v4, true)
    ->Arg(10)
    ->Arg(1000)
    ->Arg(100'000)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Build, v6, false)
    ->Arg(10)
    ->Arg(1000)
    ->Arg(100'000)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Parse, v4, true)->Arg(100'000)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Parse, v6, false)->Arg(100'000)->Unit(benchmark::kMillisecond);

}  // namespace
