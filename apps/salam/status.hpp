// DaemonStatus: what the admin endpoint reports of the running daemon.
//
// The daemon (main thread) publishes its listeners, its reloads and its
// phase; the admin endpoint's thread takes a snapshot per request. The
// counters themselves are the listeners' own (metrics.hpp): a snapshot
// sums them, and the lock here guards only the list of listeners and the
// reload record, never the connection path.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <salam/server.hpp>
#include <salam/tls.hpp>

#include "heartbeat.hpp"
#include "metrics.hpp"

namespace salam::daemon {

enum class Phase : std::uint8_t { starting, running, draining };
std::string_view to_string(Phase phase) noexcept;

// What the endpoint says of one listener.
struct ListenerInfo {
  std::string address;  // where it listens
  std::string service;
  std::string proxy;  // off, on or optional
  bool tls = false;
  std::vector<tls::ServerContext::Certificate> certificates;
  // The settings that shape its connections, as the configuration spells
  // them (name, value), for /status.json.
  std::vector<std::pair<std::string, std::string>> settings;
  std::shared_ptr<ListenerMetrics> metrics;
};

struct ReloadRecord {
  std::uint64_t count = 0;     // SIGHUPs handled
  std::uint64_t failures = 0;  // of which rejected
  double last_time = 0;        // Unix seconds; 0: never
  bool last_successful = true;
  double last_success_time = 0;  // the start, until a reload succeeds
  std::string last_error;        // of the last reload, if it failed
};

struct StatusSnapshot {
  std::string version;
  std::string backend;
  int pid = 0;
  unsigned shards = 0;
  double start_time = 0;  // Unix seconds
  double now = 0;
  Phase phase = Phase::starting;
  std::uint64_t limit = 0;  // max-connections, over all listeners
  std::uint64_t active = 0;
  std::uint64_t peak = 0;  // sampled
  std::vector<std::uint64_t> accepted_per_shard;
  AcceptErrors accept_errors;
  std::uint64_t log_lines_dropped = 0;
  ReloadRecord reload;
  struct Listener {
    ListenerInfo info;
    ListenerTotals totals;
    std::uint64_t peak = 0;
  };
  std::vector<Listener> listeners;
};

class DaemonStatus {
 public:
  // `server` and `heartbeat` (null: none) must outlive this object's use.
  DaemonStatus(const Server& server, std::string version, const Heartbeat* heartbeat = nullptr);

  // From the daemon's thread.
  void set_listeners(std::vector<ListenerInfo> listeners, std::uint64_t limit);
  void reloaded(const std::string& error);  // empty: it took
  void set_phase(Phase phase) noexcept { phase_.store(phase, std::memory_order_relaxed); }

  // From any thread.
  Phase phase() const noexcept { return phase_.load(std::memory_order_relaxed); }
  StatusSnapshot snapshot() const;
  // A shard whose heartbeat has been silent too long (see Heartbeat), and
  // for how long; nothing if every shard turns (or nothing beats).
  struct Silence {
    unsigned shard;
    Duration silent;
  };
  std::optional<Silence> silent_shard() const noexcept;
  // Records the connections open now in the peaks; called every 100 ms by
  // the admin endpoint, so a peak shorter than that may be missed.
  void sample();

 private:
  const Server& server_;
  const std::string version_;
  const Heartbeat* heartbeat_;
  const double start_time_;
  std::atomic<Phase> phase_ = Phase::starting;
  std::atomic<std::uint64_t> peak_ = 0;
  mutable std::mutex mutex_;
  std::vector<ListenerInfo> listeners_;
  std::uint64_t limit_ = 0;
  ReloadRecord reload_;
};

// Unix seconds now, with the fraction.
double unix_now() noexcept;

}  // namespace salam::daemon
