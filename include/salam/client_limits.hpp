// Per-client limits: how many connections one client may have open, and
// how fast it may open new ones (a token bucket with a burst).
//
// A "client" is an address prefix — /32 for IPv4 and /64 for IPv6 by
// default — so that one host with many addresses cannot slip past a limit.
// Connections from one client may land on any shard, so the table is
// shared; it is split into stripes, each behind its own mutex, so shards
// rarely wait for one another and no lock covers the whole table.
//
// Memory is bounded: the table holds at most `max_clients` entries. A new
// client past that evicts the client idle for longest (one with no open
// connection). One million distinct sources do not grow it past the cap.
//
// Threading: thread-safe. An Admission must be released (destroyed) on any
// thread after its connection closes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include <salam/address.hpp>
#include <salam/time.hpp>

namespace salam {

struct ClientLimitOptions {
  std::size_t max_connections = 0;  // per client; 0: no limit
  double rate = 0;                  // new connections per second per client; 0: no limit
  double burst = 10;                // connections a client may open at once above the rate
  int ipv4_prefix = 32;             // what counts as one client
  int ipv6_prefix = 64;
  std::size_t max_clients = 100'000;  // entries the table may hold
};

class ClientLimits {
 public:
  explicit ClientLimits(const ClientLimitOptions& options);
  ~ClientLimits();
  ClientLimits(const ClientLimits&) = delete;
  ClientLimits& operator=(const ClientLimits&) = delete;

  enum class Verdict : std::uint8_t { admitted, too_many_connections, too_fast };

  // A place taken by an admitted connection, given back when destroyed.
  class Admission {
   public:
    Admission() noexcept = default;
    Admission(Admission&& other) noexcept;
    Admission& operator=(Admission&& other) noexcept;
    Admission(const Admission&) = delete;
    Admission& operator=(const Admission&) = delete;
    ~Admission();

    Verdict verdict() const noexcept { return verdict_; }
    explicit operator bool() const noexcept { return verdict_ == Verdict::admitted; }

   private:
    friend class ClientLimits;
    ClientLimits* limits_ = nullptr;  // set only while a place is held
    unsigned __int128 key_ = 0;
    Verdict verdict_ = Verdict::admitted;
  };

  // Decides on a new connection from `address` at time `now`.
  Admission admit(const SocketAddress& address, TimePoint now);

  const ClientLimitOptions& options() const noexcept { return options_; }
  // Clients tracked now (at most options().max_clients).
  std::size_t tracked_clients() const;

 private:
  struct Stripe;
  void release(unsigned __int128 key) noexcept;

  ClientLimitOptions options_;
  std::unique_ptr<Stripe[]> stripes_;
};

}  // namespace salam
