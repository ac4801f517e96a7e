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

#include "access_log_file.hpp"
#include "admin/admin_server.hpp"
#include "cli.hpp"
#include "config.hpp"
#include "heartbeat.hpp"
#include "pid_file.hpp"
#include "sandbox/sandbox.hpp"
#include "service_manager.hpp"
#include "session.hpp"
#include "status.hpp"
#include "watchdog.hpp"

namespace salam::daemon {

class Daemon {
 public:
  // Opens every listener: throws std::system_error if one cannot be opened,
  // ConfigError if the access log cannot.
  Daemon(Overrides overrides, DaemonConfig config, Sandbox sandbox);
  // Confines the process (`sandbox`) and serves until SIGTERM or SIGINT
  // and the drain; returns the exit status. Throws std::runtime_error if
  // the confinement fails.
  int run();

 private:
  struct Active {
    ListenerConfig config;
    std::size_t index;
    std::shared_ptr<ListenerMetrics> metrics;
  };

  HandlerFactory handler_for(const ListenerConfig& listener, const DaemonConfig& config,
                             std::shared_ptr<ListenerMetrics> metrics);
  // `inherited`: the sockets passed for it (by systemd or by an upgrade),
  // listening on `inherited_address` (empty: the listener's own).
  std::size_t open(const ListenerConfig& listener, const DaemonConfig& config,
                   std::shared_ptr<ListenerMetrics> metrics, std::vector<int> inherited = {},
                   const std::string& inherited_address = {});
  void apply_client_limits(const ClientLimitOptions& options);
  void apply_handshake_rate(double rate);
  // open(), retrying for up to `patience` while the address is in use.
  std::size_t open_retrying(const ListenerConfig& listener, const DaemonConfig& config,
                            std::shared_ptr<ListenerMetrics> metrics, Duration patience);
  // SIGHUP: re-reads the configuration and applies it, or keeps the
  // running one if anything at all goes wrong.
  void reload() noexcept;
  void apply_reload();
  void reopen_access_log() noexcept;
  void log_refusals() const;
  // SIGUSR2: starts a new process with the listening sockets; true once it
  // serves (this one then drains), false if it failed (this one serves on).
  bool upgrade() noexcept;
  // Into systemd's descriptor store (FDSTORE=1), under systemd.
  void store_sockets(const Active& active) noexcept;
  // Tells the admin endpoint what runs now.
  void publish_status();

  Overrides overrides_;
  DaemonConfig config_;
  Sandbox sandbox_;
  ConnectionBudget budget_;
  std::shared_ptr<ClientLimits> limits_;   // null when no per-client limit is set
  std::shared_ptr<RateLimit> handshakes_;  // null when TLS handshakes are not limited
  AccessLogFile access_log_;
  std::unique_ptr<Heartbeat> heartbeat_;  // null without --admin or a watchdog; outlives server_
  std::unique_ptr<Server> server_;
  PidFile pid_file_;
  ServiceManager service_manager_;
  std::string last_reload_error_;  // empty: the last reload succeeded
  std::vector<Active> active_;
  std::unique_ptr<DaemonStatus> status_;  // reads server_ and active_'s metrics
  std::unique_ptr<AdminServer> admin_;    // null without --admin
  std::unique_ptr<Watchdog> watchdog_;    // null unless systemd asks for one
};

}  // namespace salam::daemon
