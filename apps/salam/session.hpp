// A session: one connection's way through the daemon.
//
//   budget (max-connections) → log "connected" → service → close → access record
//
// Exactly one access record per connection, with one close reason.
#pragma once

#include <memory>
#include <string>

#include <salam/connection.hpp>
#include <salam/connection_budget.hpp>
#include <salam/task.hpp>

#include "config.hpp"
#include "services/service.hpp"

namespace salam::daemon {

// What every connection of one listener shares. Each shard has its own
// copy (see Server::listen with a HandlerFactory), so that sessions on
// different shards never write the same reference count.
struct ListenerRuntime {
  ListenerConfig config;
  const ServiceInfo* service = nullptr;
  ConnectionBudget* budget = nullptr;  // owned by the daemon, outlives the server
  bool is_unix = false;
  bool log_connections = true;
};

Task<> serve_session(Connection client, std::shared_ptr<const ListenerRuntime> listener);

}  // namespace salam::daemon
