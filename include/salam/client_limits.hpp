// Per-client limits: how many connections one client may have open, and
// how fast it may open new ones (a token bucket with a burst).
//
// A "client" is an address prefix — /32 for IPv4 and /64 for IPv6 by
// default — so that one host with many addresses cannot slip past a limit.
// An IPv4-mapped IPv6 address (::ffff:a.b.c.d, an IPv4 client on a
// dual-stack socket) is an IPv4 client and uses ipv4_prefix.
// Connections from one client may land on any shard, so the table is
// shared; it is split into stripes (up to 64, by a seeded hash of the
// client), each behind its own mutex, so shards rarely wait for one another
// and no lock covers the whole table.
//
// Memory is bounded: the table holds at most `max_clients` entries, split
// evenly over the stripes. A new client in a full stripe takes the place of
// that stripe's client idle for longest (one with no open connection); an
// evicted client comes back later with a full bucket. One million distinct
// sources do not grow the table past the cap.
//
// If a new client's stripe is full of clients that all have connections
// open, the client is admitted without being tracked: no limit applies to
// that connection and its Admission holds nothing. Refusing instead would
// let whoever holds many connections from many addresses lock innocent
// newcomers out, the limit turned into the attack. It can only happen when
// about max_clients / stripes clients have connections open in one stripe,
// so keep max_clients at least twice the server's global connection cap
// (the default, 100,000, is ten times the daemon's default of 10,000): the
// global cap then refuses long before a stripe runs out of idle entries.
//
// With max_connections and rate both 0 nothing is tracked at all. The
// constructor throws std::invalid_argument for options out of range
// (prefixes beyond the family, negative rate, burst < 1 with a rate,
// max_clients 0).
//
// Threading: thread-safe. An Admission must be released (destroyed) on any
// thread after its connection closes. Lifetime: the ClientLimits must
// outlive every Admission it gave.
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
