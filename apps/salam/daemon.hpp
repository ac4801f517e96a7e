// Daemon: the running salam — a Server with the configured listeners,
// signals, and reloads.
//
// Threading: construct and run on the main thread; run() handles signals
// there (the shards never see them).
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include <salam/connection_budget.hpp>
#include <salam/server.hpp>

#include "cli.hpp"
#include "config.hpp"

namespace salam::daemon {

class Daemon {
 public:
  // Opens every listener: throws std::system_error if one cannot be opened.
  Daemon(Overrides overrides, DaemonConfig config);
  // Serves until SIGTERM or SIGINT and the drain; returns the exit status.
  int run();

 private:
  struct Active {
    ListenerConfig config;
    std::size_t index;
  };

  HandlerFactory handler_for(const ListenerConfig& listener, bool log_connections);
  std::size_t open(const ListenerConfig& listener, bool log_connections);
  const Active* find(const std::string& address) const;
  void reload();

  Overrides overrides_;
  DaemonConfig config_;
  ConnectionBudget budget_;
  std::unique_ptr<Server> server_;
  std::vector<Active> active_;
};

}  // namespace salam::daemon
