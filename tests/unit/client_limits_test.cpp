#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <salam/client_limits.hpp>

#include "sanitizers.hpp"

namespace salam {
namespace {

using namespace std::chrono_literals;
using Verdict = ClientLimits::Verdict;

const TimePoint t0 = TimePoint{} + 1000s;

SocketAddress ip(const char* text) {
  auto address = SocketAddress::from_ip(text, 40000);
  if (!address) throw std::invalid_argument(std::string("test address ") + text);
  return *address;
}

// The i-th of many distinct clients: IPv4 for even i, a distinct IPv6 /64
// for odd i.
SocketAddress nth_client(std::uint32_t i) {
  if (i % 2 == 0) {
    sockaddr_in v4{};
    v4.sin_family = AF_INET;
    v4.sin_addr.s_addr = htonl(0x0b000000u + i / 2);
    return *SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&v4), sizeof v4);
  }
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  v6.sin6_addr.s6_addr[0] = 0x20;
  v6.sin6_addr.s6_addr[1] = 0x01;
  for (int byte = 0; byte < 4; ++byte) {
    v6.sin6_addr.s6_addr[4 + byte] = static_cast<std::uint8_t>((i / 2) >> (8 * (3 - byte)));
  }
  v6.sin6_addr.s6_addr[15] = 1;
  return *SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&v6), sizeof v6);
}

std::size_t resident_bytes() {
  std::FILE* statm = std::fopen("/proc/self/statm", "r");
  unsigned long size = 0;
  unsigned long resident = 0;
  if (statm) {
    if (std::fscanf(statm, "%lu %lu", &size, &resident) != 2) resident = 0;
    std::fclose(statm);
  }
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

using detail::kSanitized;

TEST(ClientLimits, DefaultAdmissionIsAdmittedAndHoldsNothing) {
  ClientLimits::Admission admission;
  EXPECT_TRUE(admission);
  EXPECT_EQ(admission.verdict(), Verdict::admitted);
}

void make_limits(const ClientLimitOptions& options) {
  ClientLimits limits(options);
}

TEST(ClientLimits, RefusesBadOptions) {
  ClientLimitOptions ipv4_too_long{.ipv4_prefix = 33};
  ClientLimitOptions ipv4_negative{.ipv4_prefix = -1};
  ClientLimitOptions ipv6_too_long{.ipv6_prefix = 129};
  ClientLimitOptions negative_rate{.rate = -1};
  ClientLimitOptions burst_below_one{.rate = 1, .burst = 0.5};
  ClientLimitOptions no_room{.max_clients = 0};
  for (const auto& bad :
       {ipv4_too_long, ipv4_negative, ipv6_too_long, negative_rate, burst_below_one, no_room}) {
    EXPECT_THROW(make_limits(bad), std::invalid_argument);
  }
  ClientLimitOptions no_rate_no_burst{.rate = 0, .burst = 0};  // burst is unused
  EXPECT_NO_THROW(make_limits(no_rate_no_burst));
}

TEST(ClientLimits, WithoutLimitsTracksNobody) {
  ClientLimits limits({});
  auto admission = limits.admit(ip("10.0.0.1"), t0);
  EXPECT_TRUE(admission);
  EXPECT_EQ(limits.tracked_clients(), 0u);
}

TEST(ClientLimits, ConnectionLimitPerClient) {
  ClientLimits limits({.max_connections = 2});
  auto first = limits.admit(ip("10.0.0.1"), t0);
  auto second = limits.admit(ip("10.0.0.1"), t0);
  auto third = limits.admit(ip("10.0.0.1"), t0);
  EXPECT_TRUE(first);
  EXPECT_TRUE(second);
  EXPECT_FALSE(third);
  EXPECT_EQ(third.verdict(), Verdict::too_many_connections);
  EXPECT_TRUE(limits.admit(ip("10.0.0.2"), t0)) << "another client is not affected";
  first = {};  // releases its place
  EXPECT_TRUE(limits.admit(ip("10.0.0.1"), t0));
}

TEST(ClientLimits, RefusedAdmissionHoldsNoPlace) {
  ClientLimits limits({.max_connections = 1});
  auto held = limits.admit(ip("10.0.0.1"), t0);
  for (int i = 0; i < 5; ++i)
    EXPECT_FALSE(limits.admit(ip("10.0.0.1"), t0));
  held = {};
  auto again = limits.admit(ip("10.0.0.1"), t0);
  EXPECT_TRUE(again);
}

TEST(ClientLimits, MovingAnAdmissionMovesThePlace) {
  ClientLimits limits({.max_connections = 1});
  auto original = limits.admit(ip("10.0.0.1"), t0);
  ClientLimits::Admission moved(std::move(original));
  original = {};  // the moved-from admission gives nothing back
  EXPECT_FALSE(limits.admit(ip("10.0.0.1"), t0));
  ClientLimits::Admission assigned;
  assigned = std::move(moved);
  moved = {};
  EXPECT_FALSE(limits.admit(ip("10.0.0.1"), t0));
  // Assigning over an admission releases the place it held.
  assigned = limits.admit(ip("10.0.0.2"), t0);
  EXPECT_TRUE(limits.admit(ip("10.0.0.1"), t0));
  EXPECT_FALSE(limits.admit(ip("10.0.0.2"), t0));
}

TEST(ClientLimits, Ipv4ClientsGroupedByPrefix) {
  ClientLimits limits({.max_connections = 1, .ipv4_prefix = 24});
  auto first = limits.admit(ip("192.0.2.1"), t0);
  EXPECT_TRUE(first);
  EXPECT_EQ(limits.admit(ip("192.0.2.200"), t0).verdict(), Verdict::too_many_connections);
  EXPECT_TRUE(limits.admit(ip("192.0.3.1"), t0));
}

TEST(ClientLimits, Ipv6ClientsGroupedBySlash64ByDefault) {
  ClientLimits limits({.max_connections = 1});
  auto first = limits.admit(ip("2001:db8:0:1::1"), t0);
  EXPECT_TRUE(first);
  EXPECT_FALSE(limits.admit(ip("2001:db8:0:1:ffff:ffff:ffff:ffff"), t0));
  EXPECT_TRUE(limits.admit(ip("2001:db8:0:2::1"), t0));
}

TEST(ClientLimits, MappedIpv4IsTheSameClientAsIpv4) {
  ClientLimits limits({.max_connections = 1});
  auto first = limits.admit(ip("10.0.0.1"), t0);
  EXPECT_FALSE(limits.admit(ip("::ffff:10.0.0.1"), t0));
  // Mapped addresses use the IPv4 prefix, not the /64 they sit in.
  EXPECT_TRUE(limits.admit(ip("::ffff:10.0.0.2"), t0));
}

TEST(ClientLimits, RateLimitBurstThenRefill) {
  ClientLimits limits({.rate = 2, .burst = 3});
  const auto client = ip("10.0.0.1");
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(limits.admit(client, t0)) << i;
  EXPECT_EQ(limits.admit(client, t0).verdict(), Verdict::too_fast);
  EXPECT_EQ(limits.admit(client, t0 + 499ms).verdict(), Verdict::too_fast);
  EXPECT_TRUE(limits.admit(client, t0 + 500ms)) << "2 per second: one token in 500 ms";
  EXPECT_EQ(limits.admit(client, t0 + 500ms).verdict(), Verdict::too_fast);
  // A long pause refills only up to the burst.
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(limits.admit(client, t0 + 1h)) << i;
  EXPECT_EQ(limits.admit(client, t0 + 1h).verdict(), Verdict::too_fast);
  EXPECT_TRUE(limits.admit(ip("10.0.0.2"), t0 + 1h)) << "another client has its own bucket";
}

TEST(ClientLimits, ClockGoingBackEarnsNothing) {
  ClientLimits limits({.rate = 1, .burst = 1});
  const auto client = ip("10.0.0.1");
  EXPECT_TRUE(limits.admit(client, t0));
  EXPECT_FALSE(limits.admit(client, t0 - 10s));
  EXPECT_FALSE(limits.admit(client, t0 + 999ms));
  EXPECT_TRUE(limits.admit(client, t0 + 1s));
}

TEST(ClientLimits, ConnectionCountIsCheckedFirstAndCostsNoToken) {
  ClientLimits limits({.max_connections = 1, .rate = 0.001, .burst = 2});
  const auto client = ip("10.0.0.1");
  auto held = limits.admit(client, t0);  // 1 token left
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(limits.admit(client, t0).verdict(), Verdict::too_many_connections);
  }
  held = {};
  auto second = limits.admit(client, t0);
  EXPECT_TRUE(second) << "refusals for the connection count spent no token";
  second = {};
  EXPECT_EQ(limits.admit(client, t0).verdict(), Verdict::too_fast);
}

TEST(ClientLimits, EvictsTheClientIdleForLongest) {
  // Under 32 clients the table is one stripe: one LRU over all of them.
  // Clients spend their only token, so an evicted client shows by being
  // admitted again with a fresh bucket.
  ClientLimits limits({.rate = 0.001, .burst = 1, .max_clients = 2});
  const auto a = ip("10.0.0.1");
  const auto b = ip("10.0.0.2");
  const auto c = ip("10.0.0.3");
  EXPECT_TRUE(limits.admit(a, t0));
  EXPECT_TRUE(limits.admit(b, t0));
  EXPECT_TRUE(limits.admit(c, t0)) << "evicts a, idle for longest";
  EXPECT_EQ(limits.tracked_clients(), 2u);
  EXPECT_FALSE(limits.admit(b, t0)) << "b is still tracked; the refusal counts as use";
  EXPECT_TRUE(limits.admit(a, t0)) << "a was forgotten: a fresh bucket; evicts c";
  EXPECT_FALSE(limits.admit(b, t0));
  EXPECT_TRUE(limits.admit(c, t0)) << "c was forgotten; evicts a";
  EXPECT_FALSE(limits.admit(b, t0));
  EXPECT_EQ(limits.tracked_clients(), 2u);
}

// A slow, obviously right model of one stripe: entries in a vector, the
// least recently used idle one found by a linear search.
class ClientLimitsModel {
 public:
  explicit ClientLimitsModel(const ClientLimitOptions& options) : options_(options) {}

  // The verdict, and whether the admission holds a tracked place.
  std::pair<Verdict, bool> admit(int client, TimePoint now) {
    Entry* entry = find_or_make(client, now);
    if (!entry) return {Verdict::admitted, false};
    Verdict verdict = Verdict::admitted;
    if (options_.max_connections != 0 && entry->open >= options_.max_connections) {
      verdict = Verdict::too_many_connections;
    } else if (options_.rate > 0) {
      if (now > entry->refilled) {
        const double seconds = std::chrono::duration<double>(now - entry->refilled).count();
        entry->tokens = std::min(options_.burst, entry->tokens + seconds * options_.rate);
        entry->refilled = now;
      }
      if (entry->tokens < 1) {
        verdict = Verdict::too_fast;
      } else {
        entry->tokens -= 1;
      }
    }
    if (verdict == Verdict::admitted) {
      ++entry->open;
      return {verdict, true};
    }
    if (entry->open == 0) entry->last_use = ++uses_;
    return {verdict, false};
  }

  void release(int client) {
    for (Entry& entry : entries_) {
      if (entry.client == client && --entry.open == 0) entry.last_use = ++uses_;
    }
  }

  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    int client;
    std::size_t open = 0;
    double tokens = 0;
    TimePoint refilled{};
    std::uint64_t last_use = 0;
  };

  Entry* find_or_make(int client, TimePoint now) {
    for (Entry& entry : entries_) {
      if (entry.client == client) return &entry;
    }
    const Entry fresh{client, 0, options_.burst, now, ++uses_};
    if (entries_.size() < options_.max_clients) return &entries_.emplace_back(fresh);
    Entry* oldest_idle = nullptr;
    for (Entry& entry : entries_) {
      if (entry.open == 0 && (!oldest_idle || entry.last_use < oldest_idle->last_use)) {
        oldest_idle = &entry;
      }
    }
    if (oldest_idle) *oldest_idle = fresh;
    return oldest_idle;
  }

  ClientLimitOptions options_;
  std::vector<Entry> entries_;
  std::uint64_t uses_ = 0;
};

TEST(ClientLimits, MatchesASimpleModelOnRandomTraffic) {
  // Under 32 clients the table is a single stripe, so the model is exact.
  const ClientLimitOptions options{.max_connections = 2, .rate = 5, .burst = 2, .max_clients = 16};
  for (unsigned seed = 1; seed <= 12; ++seed) {
    ClientLimits limits(options);
    ClientLimitsModel model(options);
    std::mt19937 random(seed);
    std::vector<std::pair<int, ClientLimits::Admission>> held;  // client, admission
    std::vector<std::pair<int, bool>> held_in_model;            // client, tracked
    TimePoint now = t0;
    for (int step = 0; step < 20'000; ++step) {
      now += std::chrono::milliseconds(random() % 50);
      if (held.empty() || random() % 5 < 3) {
        const int client = static_cast<int>(random() % 40);
        const SocketAddress address = ip(("10.0.0." + std::to_string(client)).c_str());
        auto admission = limits.admit(address, now);
        const auto [verdict, tracked] = model.admit(client, now);
        ASSERT_EQ(admission.verdict(), verdict) << "seed " << seed << ", step " << step;
        if (!admission) continue;
        held.emplace_back(client, std::move(admission));
        held_in_model.emplace_back(client, tracked);
      } else {
        const std::size_t victim = random() % held.size();
        held.erase(held.begin() + static_cast<std::ptrdiff_t>(victim));
        if (held_in_model[victim].second) model.release(held_in_model[victim].first);
        held_in_model.erase(held_in_model.begin() + static_cast<std::ptrdiff_t>(victim));
      }
      ASSERT_EQ(limits.tracked_clients(), model.size()) << "seed " << seed << ", step " << step;
    }
  }
}

TEST(ClientLimits, NeverEvictsAClientWithOpenConnections) {
  constexpr std::size_t kMaxClients = 256;
  ClientLimits limits({.max_connections = 1, .max_clients = kMaxClients});
  // Hold a connection for more clients than fit: every stripe fills with
  // busy clients, and the rest are admitted without being tracked.
  std::vector<ClientLimits::Admission> held;
  std::vector<SocketAddress> tracked;
  for (std::uint32_t i = 0; i < 4 * kMaxClients; ++i) {
    held.push_back(limits.admit(nth_client(i), t0));
    ASSERT_TRUE(held.back()) << "a newcomer is admitted even when its stripe is full";
    if (!limits.admit(nth_client(i), t0)) tracked.push_back(nth_client(i));
  }
  EXPECT_EQ(tracked.size(), kMaxClients);
  EXPECT_EQ(limits.tracked_clients(), kMaxClients);
  // A flood of other clients finds nothing to evict.
  for (std::uint32_t i = 10'000; i < 110'000; ++i) {
    ASSERT_TRUE(limits.admit(nth_client(i), t0));
  }
  for (const SocketAddress& client : tracked) {
    EXPECT_EQ(limits.admit(client, t0).verdict(), Verdict::too_many_connections)
        << client.to_string() << " lost its count";
  }
  EXPECT_EQ(limits.tracked_clients(), kMaxClients);
  // Once released, the busy clients become idle and can be evicted.
  held.clear();
  for (std::uint32_t i = 10'000; i < 20'000; ++i) {
    ASSERT_TRUE(limits.admit(nth_client(i), t0));
  }
  EXPECT_EQ(limits.tracked_clients(), kMaxClients);
}

TEST(ClientLimits, MillionSourcesStayWithinMaxClients) {
  constexpr std::size_t kMaxClients = 10'000;
  ClientLimits limits({.max_connections = 4, .rate = 10, .burst = 5, .max_clients = kMaxClients});
  // The table is allocated lazily: warm it up first, so the measured
  // growth is what churn adds on top of a full table.
  std::uint32_t next = 0;
  for (; next < 2 * kMaxClients; ++next) {
    ASSERT_TRUE(limits.admit(nth_client(next), t0));
  }
  EXPECT_EQ(limits.tracked_clients(), kMaxClients);
  const std::size_t resident_before = resident_bytes();
  for (; next < 1'000'000; ++next) {
    ASSERT_TRUE(limits.admit(nth_client(next), t0 + std::chrono::microseconds(next)));
    if (next % 50'000 == 0) {
      ASSERT_LE(limits.tracked_clients(), kMaxClients);
    }
  }
  EXPECT_EQ(limits.tracked_clients(), kMaxClients);
  const std::size_t resident_after = resident_bytes();
  // Eviction reuses the evicted entry's node, so churn allocates nothing:
  // allow 1 MiB of noise. Sanitizers keep freed memory in quarantine and
  // add shadow pages, so they are not measured.
  if (!kSanitized) {
    EXPECT_LE(resident_after, resident_before + (1u << 20))
        << "before " << resident_before << ", after " << resident_after;
  }
}

TEST(ClientLimits, FullTableCostsAFewMegabytes) {
  if (kSanitized) GTEST_SKIP() << "sanitizers change the memory footprint";
  const std::size_t resident_before = resident_bytes();
  {
    ClientLimits limits({.max_connections = 4, .max_clients = 100'000});
    for (std::uint32_t i = 0; i < 200'000; ++i)
      ASSERT_TRUE(limits.admit(nth_client(i), t0));
    EXPECT_EQ(limits.tracked_clients(), 100'000u);
    // About 130 bytes a client (a hash node and its bucket): 13 MB; allow 20 MiB.
    EXPECT_LE(resident_bytes(), resident_before + (20u << 20));
  }
}

TEST(ClientLimits, ThreadsAdmittingAndReleasingKeepCountsExact) {
  constexpr std::size_t kMaxConnections = 3;
  constexpr std::size_t kMaxClients = 1024;
  constexpr std::uint32_t kClients = 5000;
  constexpr int kThreads = 4;
  ClientLimits limits(
      {.max_connections = kMaxConnections, .rate = 1e9, .burst = 1e6, .max_clients = kMaxClients});
  // Connections each client has open, as the test sees them: raised after
  // an admission, lowered before its release, so never above the truth.
  auto open = std::make_unique<std::atomic<int>[]>(kClients);
  std::atomic<bool> over_limit{false};
  std::atomic<bool> over_capacity{false};
  auto work = [&](unsigned seed) {
    std::mt19937 random(seed);
    std::vector<std::pair<std::uint32_t, ClientLimits::Admission>> held;
    for (int step = 0; step < 40'000; ++step) {
      if (held.size() < 8 && random() % 2 == 0) {
        const std::uint32_t client = random() % kClients;
        auto admission = limits.admit(nth_client(client), Clock::now());
        if (!admission) continue;
        if (++open[client] > static_cast<int>(kMaxConnections)) over_limit = true;
        held.emplace_back(client, std::move(admission));
      } else if (!held.empty()) {
        const std::size_t victim = random() % held.size();
        --open[held[victim].first];
        std::swap(held[victim], held.back());
        held.pop_back();
      }
      if (step % 1000 == 0 && limits.tracked_clients() > kMaxClients) over_capacity = true;
    }
    for (auto& [client, admission] : held)
      --open[client];
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i)
    threads.emplace_back(work, static_cast<unsigned>(i + 1));
  for (auto& thread : threads)
    thread.join();
  EXPECT_FALSE(over_limit);
  EXPECT_FALSE(over_capacity);
  EXPECT_LE(limits.tracked_clients(), kMaxClients);
  // Every place was given back: each client can open the full limit again.
  for (std::uint32_t client = 0; client < 200; ++client) {
    std::array<ClientLimits::Admission, kMaxConnections> places;
    for (auto& place : places) {
      place = limits.admit(nth_client(client), Clock::now());
      ASSERT_TRUE(place) << nth_client(client).to_string();
    }
    EXPECT_EQ(limits.admit(nth_client(client), Clock::now()).verdict(),
              Verdict::too_many_connections);
  }
}

}  // namespace
}  // namespace salam
