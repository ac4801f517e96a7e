// A session: one connection's way through the daemon.
//
//   budget (max-connections) → PROXY header → access list → client limits
//     → TLS handshake → "connected" → service → close → access record
//
// A connection refused at a step never reaches the next, and every
// connection ends with exactly one access record and one close reason —
// except refusals beyond a rate (see LineBudget), which are counted
// and summed up in one line rather than flooding the log.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <salam/client_limits.hpp>
#include <salam/connection.hpp>
#include <salam/connection_budget.hpp>
#include <salam/task.hpp>

#include "close_reason.hpp"
#include "config.hpp"
#include "metrics.hpp"
#include "rate_limit.hpp"
#include "services/service.hpp"

namespace salam::daemon {

// A token bucket for log lines that a flood could multiply: the records of
// refused connections, the warnings of server-side failures. One per kind
// per listener per shard.
class LineBudget {
 public:
  // True if this refusal gets its record; `suppressed` then holds how many
  // did not since the last one that did.
  bool allow(TimePoint now, std::uint64_t& suppressed) noexcept;

 private:
  static constexpr double kPerSecond = 20;
  static constexpr double kBurst = 100;
  double tokens_ = kBurst;
  TimePoint last_{};
  std::uint64_t suppressed_ = 0;
};

// What every connection of one listener shares. Each shard has its own
// copy (see Server::listen with a HandlerFactory), so that sessions on
// different shards never write the same memory.
struct ListenerRuntime {
  ListenerConfig config;
  const ServiceInfo* service = nullptr;
  ConnectionBudget* budget = nullptr;    // owned by the daemon, outlives the server
  std::shared_ptr<ClientLimits> limits;  // null: no per-client limits
  std::string limit_message;             // sent before closing a client refused by a limit
  std::shared_ptr<ListenerMetrics> metrics;
  ShardCounters* counters = nullptr;      // this shard's, in `metrics`
  std::shared_ptr<RateLimit> handshakes;  // null: no limit on TLS handshakes
  bool is_unix = false;
  bool log_connections = true;

  mutable LineBudget refusal_records;  // this shard's
  mutable LineBudget server_errors;    // this shard's warnings of server_error ends
};

Task<> serve_session(Connection client, std::shared_ptr<const ListenerRuntime> listener);

}  // namespace salam::daemon
