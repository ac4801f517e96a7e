#include "daemon.hpp"

#include <algorithm>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <unordered_map>

#include <fmt/ranges.h>

#include <salam/log.hpp>
#include <salam/shard_context.hpp>
#include <salam/tls.hpp>

#include "duration.hpp"
#include "exec/spawner.hpp"
#include "socket_activation.hpp"
#include "upgrade.hpp"

namespace salam::daemon {

namespace {

ListenOptions listen_options(const ListenerConfig& listener) {
  ListenOptions options;
  options.address = listener.address;
  options.backlog = listener.backlog;
  options.reuse_port = listener.reuse_port;
  options.send_buffer = listener.send_buffer;
  // Interactive services answer each read at once; do not let Nagle wait.
  options.no_delay = listener.service == "echo";
  if (listener.defer_accept) {
    // The kernel holds a connection until its first bytes arrive, for at
    // most the read timeout (rounded up to whole seconds).
    options.defer_accept_seconds = static_cast<int>(
        std::chrono::ceil<std::chrono::seconds>(listener.options.read_timeout).count());
  }

  return options;
}

// Whether two listeners' sockets would be set up alike: what a reload
// cannot change without reopening the socket.
bool same_socket(const ListenerConfig& a, const ListenerConfig& b) {
  const ListenOptions x = listen_options(a);
  const ListenOptions y = listen_options(b);
  return x.backlog == y.backlog && x.reuse_port == y.reuse_port && x.no_delay == y.no_delay &&
         x.defer_accept_seconds == y.defer_accept_seconds && x.send_buffer == y.send_buffer;
}

// What /status.json shows of a listener's settings.
std::vector<std::pair<std::string, std::string>> settings_of(const ListenerConfig& listener) {
  const ServiceOptions& options = listener.options;
  std::vector<std::pair<std::string, std::string>> settings = {
      {"backlog", std::to_string(listener.backlog)},
      {"reuse-port", listener.reuse_port ? "true" : "false"},
      {"read-timeout", format_duration(options.read_timeout)},
      {"idle-timeout", format_duration(options.idle_timeout)},
      {"write-timeout", format_duration(options.write_timeout)},
      {"access-list", listener.access.list ? "on" : "off"},
  };
  if (listener.max_lifetime > Duration::zero()) {
    settings.emplace_back("max-lifetime", format_duration(listener.max_lifetime));
  }
  if (listener.min_rate > 0)
    settings.emplace_back("min-rate", fmt::format("{}", listener.min_rate));
  if (listener.tls.enabled()) {
    settings.emplace_back("tls-handshake-timeout", format_duration(listener.tls.handshake_timeout));
  }
  return settings;
}

bool any_tls(const DaemonConfig& config) {
  return std::any_of(config.listeners.begin(), config.listeners.end(),
                     [](const ListenerConfig& listener) { return listener.tls.enabled(); });
}

// What checking the certificates found worth saying (expiring soon).
void log_tls_warnings(const DaemonConfig& config) {
  for (const auto& listener : config.listeners) {
    if (!listener.tls.context) continue;
    for (const auto& warning : listener.tls.context->warnings())
      log::warning("{}", warning);
  }
}

// The new process of an upgrade inherits the system call filter of the
// one it replaces, which refuses new io_uring rings (docs/security.md): it
// serves on epoll rather than not at all.
BackendKind backend_for(BackendKind wanted) {
  if (wanted != BackendKind::io_uring || !Upgrade::replacing()) return wanted;
  std::string why_not;
  if (resolve_backend(BackendKind::automatic, &why_not) == BackendKind::io_uring) return wanted;
  log::warning(
      "upgrade: io_uring is not permitted to this process ({}): serving on epoll "
      "until the next start",
      why_not);
  return BackendKind::epoll;
}

bool same_limits(const ClientLimitOptions& a, const ClientLimitOptions& b) {
  return a.max_connections == b.max_connections && a.rate == b.rate && a.burst == b.burst &&
         a.ipv4_prefix == b.ipv4_prefix && a.ipv6_prefix == b.ipv6_prefix &&
         a.max_clients == b.max_clients;
}

}  // namespace

Daemon::Daemon(Overrides overrides, DaemonConfig config, Sandbox sandbox)
    : overrides_(std::move(overrides)),
      config_(std::move(config)),
      sandbox_(std::move(sandbox)),
      budget_(config_.max_connections) {
  sandbox_.create_for_user(config_.access_log);
  if (std::string error = access_log_.open(config_.access_log); !error.empty()) {
    throw ConfigError("", error);
  }
  apply_client_limits(config_.client_limits);
  apply_handshake_rate(config_.tls_handshake_rate);
  if (any_tls(config_)) {
    log_tls_warnings(config_);
    // salam encrypts TLS records itself; the kernel's TLS offload is not
    // used (see docs/tls.md). Said once, so that nobody wonders.
    log::info("TLS: records are encrypted in user space (kernel TLS {})",
              tls::kernel_tls_available() ? "is available but not used"
                                          : "is not available here: no tls module");
  }
  ServerOptions options;
  options.threads = config_.threads;
  options.loop.backend = backend_for(config_.backend);
  server_ = std::make_unique<Server>(options);
  // The shards' heartbeat, for the watchdog and for /live.
  const Duration watchdog = Watchdog::interval_from_environment();
  if (watchdog > Duration::zero() || !config_.admin.empty()) {
    heartbeat_ = std::make_unique<Heartbeat>(
        server_->shard_count(), watchdog > Duration::zero() ? Watchdog::heartbeat_period(watchdog)
                                                            : std::chrono::milliseconds(500));
    server_->on_each_shard(heartbeat_->task());
  }
  if (watchdog > Duration::zero()) watchdog_ = std::make_unique<Watchdog>(*heartbeat_, watchdog);
  // Sockets passed by systemd or by an upgrade are used where they match a
  // listener (or the admin endpoint); the rest are closed once every
  // listener is open.
  InheritedSockets inherited = InheritedSockets::take();
  for (const auto& listener : config_.listeners) {
    auto metrics = std::make_shared<ListenerMetrics>(server_->shard_count());
    // By name first, where the listener has one; then by address.
    std::string named_address = listener.address;
    std::vector<int> fds;
    if (!listener.socket_name.empty())
      fds = inherited.claim_named(listener.socket_name, named_address);
    if (fds.empty()) fds = inherited.claim(listener.address);
    const std::size_t index = !fds.empty() ? open(listener, config_, metrics, fds, named_address)
                                           : open_retrying(listener, config_, metrics, 3s);
    active_.push_back(Active{listener, index, metrics});
  }
  status_ = std::make_unique<DaemonStatus>(*server_, SALAM_VERSION, heartbeat_.get());
  publish_status();
  if (!config_.admin.empty()) {
    admin_ = std::make_unique<AdminServer>(config_.admin, server_->backend(), *status_,
                                           inherited.claim(config_.admin));
    const std::string where = admin_->address();
    log::info("admin endpoint on {}{}", where.starts_with("unix:") ? "" : "http://",
              where.starts_with("unix:") ? where : where + "/");
  }
}

std::size_t Daemon::open_retrying(const ListenerConfig& listener, const DaemonConfig& config,
                                  std::shared_ptr<ListenerMetrics> metrics, Duration patience) {
  // The address may be held a moment longer by a socket on its way out:
  // at start, a predecessor's that was just killed (or restarted by
  // systemd: io_uring lets go of a dead process's sockets in a kernel
  // worker, 5 to 10 ms after it is gone; measured, see
  // docs/configuration.md, "Exit statuses"); at a reload, this process's
  // own, when the previous reload closed the listener and a shard has not
  // let go of it yet. Like nginx, retry before giving up; in short steps,
  // since the wait is short, and with one line.
  constexpr auto kPause = std::chrono::milliseconds(50);
  const auto give_up = std::chrono::steady_clock::now() + patience;
  for (bool warned = false;; warned = true) {
    try {
      return open(listener, config, metrics);
    } catch (const std::system_error& e) {
      if (e.code() != std::errc::address_in_use || std::chrono::steady_clock::now() >= give_up)
        throw;
      if (!warned) {
        log::warning("{}; trying again for up to {} ms", e.what(),
                     std::chrono::duration_cast<std::chrono::milliseconds>(patience).count());
        log::flush_thread_buffer();
      }
      std::this_thread::sleep_for(kPause);
    }
  }
}

int Daemon::run() {
  // The listeners listen already: connections wait in their queues.
  if (!config_.pid_file.empty()) pid_file_.write(config_.pid_file);
  // Everything is open: from here on, only what a reload needs. Before
  // the threads start (the admin endpoint's, the shards'), which inherit it.
  sandbox_.confine_files(config_);
  if (admin_) admin_->start();
  SignalHooks hooks;
  hooks.started = [this] {
    // The shards run and their rings exist: drop root, then filter, before
    // saying ready to anyone.
    sandbox_.confine_process();
    status_->set_phase(Phase::running);
    service_manager_.ready(fmt::format("serving {} listener(s)", active_.size()));
    Upgrade::report_ready();  // to the process this one replaces, if any
    for (const auto& active : active_)
      store_sockets(active);
    if (admin_) service_manager_.store_sockets(config_.admin, admin_->listening_descriptors());
    if (watchdog_) {
      try {
        watchdog_->start();
      } catch (const std::exception& e) {
        log::error("systemd watchdog: cannot start its thread: {}", e.what());
      }
    }
  };
  hooks.hangup = [this] {
    service_manager_.reloading();
    reload();
    status_->reloaded(last_reload_error_);
    service_manager_.ready(last_reload_error_.empty()
                               ? fmt::format("reloaded: serving {} listener(s)", active_.size())
                               : "reload rejected, the running configuration stays: " +
                                     last_reload_error_);
  };
  hooks.upgrade = [this] { return upgrade(); };
  hooks.stopping = [this] {
    status_->set_phase(Phase::draining);  // /ready says 503 from here, the grace included
    service_manager_.stopping(config_.accept_grace + config_.drain_timeout);
  };
  hooks.plan = [this] { return StopPlan{config_.accept_grace, config_.drain_timeout}; };
  const int status = run_until_signal(*server_, config_.drain_timeout, hooks);
  watchdog_.reset();
  if (admin_) admin_->stop();  // after the drain: /ready said 503 all along
  pid_file_.remove();
  log_refusals();
  if (server_->shard_count() > 1) {
    log::info("connections accepted per shard: {}", fmt::join(server_->accepted_per_shard(), ", "));
  }
  return status;
}

HandlerFactory Daemon::handler_for(const ListenerConfig& listener, const DaemonConfig& config,
                                   std::shared_ptr<ListenerMetrics> metrics) {
  auto shared = std::make_shared<ListenerRuntime>();
  shared->config = listener;
  shared->service = find_service(listener.service);
  shared->budget = &budget_;
  shared->limits = limits_;
  shared->handshakes = handshakes_;
  shared->limit_message = config.limit_message;
  shared->metrics = std::move(metrics);
  shared->is_unix = listener.address.starts_with("unix:");
  shared->log_connections = config.log_connections;
  return [shared] {
    // Each shard gets its own copy: sessions count references shard-locally.
    auto copy = std::make_shared<ListenerRuntime>(*shared);
    copy->counters = &copy->metrics->shard(ShardContext::current()->index());
    std::shared_ptr<const ListenerRuntime> local = std::move(copy);
    return Handler([local](Connection client) { return serve_session(std::move(client), local); });
  };
}

std::size_t Daemon::open(const ListenerConfig& listener, const DaemonConfig& config,
                         std::shared_ptr<ListenerMetrics> metrics, std::vector<int> inherited,
                         const std::string& inherited_address) {
  ListenOptions options = listen_options(listener);
  options.inherited_fds = std::move(inherited);
  // A socket found by name listens where it listens, whatever the file says.
  if (!options.inherited_fds.empty() && !inherited_address.empty()) {
    options.address = inherited_address;
  }
  options.owns_inherited_file = Upgrade::replacing();
  const std::size_t index = server_->listen(options, handler_for(listener, config, metrics));
  // Logs name the listener by where it really listens (port 0 becomes the
  // port the kernel chose).
  if (std::string bound = server_->local_address(index); bound != listener.address) {
    ListenerConfig named = listener;
    named.address = std::move(bound);
    server_->replace_handler(index, handler_for(named, config, metrics));
  }
  return index;
}

void Daemon::apply_client_limits(const ClientLimitOptions& options) {
  if (options.max_connections == 0 && options.rate == 0) {
    limits_.reset();
  } else if (!limits_ || !same_limits(limits_->options(), options)) {
    // A new table: connections already open keep counting in the old one,
    // which lives as long as they do.
    limits_ = std::make_shared<ClientLimits>(options);
  }
}

void Daemon::apply_handshake_rate(double rate) {
  if (rate <= 0) {
    handshakes_.reset();
  } else if (!handshakes_ || handshakes_->rate() != rate) {
    // A burst of one second's worth, and at least one.
    handshakes_ = std::make_shared<RateLimit>(rate, std::max(1.0, rate));
  }
}

void Daemon::reload() noexcept {
  // Whatever goes wrong, the process and the running configuration stay.
  try {
    apply_reload();
    last_reload_error_.clear();
  } catch (const std::bad_alloc&) {
    log::error("reload rejected, the running configuration stays: out of memory");
    last_reload_error_ = "out of memory";
    reopen_access_log();
  } catch (const std::exception& e) {
    log::error("reload rejected, the running configuration stays: {}", e.what());
    try {
      last_reload_error_ = e.what();
    } catch (const std::bad_alloc&) {
      last_reload_error_ = "out of memory";  // short enough to need no allocation
    }
    reopen_access_log();
  }
}

void Daemon::reopen_access_log() noexcept {
  // Log rotation does not wait for a good configuration.
  try {
    if (std::string error = access_log_.open(config_.access_log); !error.empty()) {
      log::error("{}", error);
    }
  } catch (const std::exception& e) {
    log::error("cannot reopen the access log: {}", e.what());
  }
}

void Daemon::apply_reload() {
  if (!overrides_.config_file && !any_tls(config_)) {
    log::warning("SIGHUP: no configuration file to re-read (start salam with --config FILE)");
    reopen_access_log();  // log rotation still works without one
    return;
  }
  if (!overrides_.config_file) {
    log::info("SIGHUP: no configuration file to re-read; re-reading the certificates");
  }
  DaemonConfig next = load_configuration(overrides_);
  if (uses_exec(next) && !exec::spawner_started()) {
    throw ConfigError("",
                      "the exec service needs the spawner process, which salam starts only "
                      "when its first configuration has an exec listener or its sandbox on: "
                      "restart salam, or upgrade it with SIGUSR2");
  }
  log_tls_warnings(next);
  const std::shared_ptr<ClientLimits> previous_limits = limits_;
  const std::shared_ptr<RateLimit> previous_handshakes = handshakes_;
  apply_client_limits(next.client_limits);
  apply_handshake_rate(next.tls_handshake_rate);

  // Everything that can fail comes first, and is undone if it does: new
  // listeners are opened and the kept ones' handlers built before anything
  // running changes. Listeners are matched by address, in a map: a file
  // may have very many.
  std::unordered_map<std::string_view, const ListenerConfig*> wanted;
  std::unordered_map<std::string_view, const Active*> running;
  for (const auto& listener : next.listeners)
    wanted.emplace(listener.address, &listener);
  for (const auto& active : active_)
    running.emplace(active.config.address, &active);

  std::vector<Active> added;
  std::vector<Active> kept;
  std::vector<HandlerFactory> kept_handlers;
  try {
    for (const auto& listener : next.listeners) {
      if (running.contains(listener.address)) continue;
      auto metrics = std::make_shared<ListenerMetrics>(server_->shard_count());
      added.push_back(Active{listener, open_retrying(listener, next, metrics, 1s), metrics});
    }
    for (const auto& active : active_) {
      auto found = wanted.find(active.config.address);
      if (found == wanted.end()) continue;
      kept_handlers.push_back(handler_for(*found->second, next, active.metrics));
      kept.push_back(Active{*found->second, active.index, active.metrics});
    }
  } catch (...) {
    for (const auto& undo : added)
      server_->close_listener(undo.index);
    limits_ = previous_limits;
    handshakes_ = previous_handshakes;
    throw;
  }

  for (const auto& active : active_) {
    auto found = wanted.find(active.config.address);
    if (found == wanted.end()) {
      server_->close_listener(active.index);
      service_manager_.forget_sockets(server_->local_address(active.index));
    } else if (!same_socket(active.config, *found->second)) {
      log::warning(
          "{}: socket settings (backlog, reuse-port, defer-accept, send-buffer, and "
          "TCP_NODELAY for echo) take effect when the listener is reopened",
          found->second->origin);
    }
  }
  for (std::size_t i = 0; i < kept.size(); ++i)
    server_->replace_handler(kept[i].index, std::move(kept_handlers[i]));
  for (const auto& active : added)
    store_sockets(active);
  kept.insert(kept.end(), added.begin(), added.end());
  active_ = std::move(kept);

  if (next.threads != config_.threads || next.backend != config_.backend) {
    log::warning("threads and backend changes take effect at the next start");
  }
  if (next.user != config_.user || next.group != config_.group || next.sandbox != config_.sandbox) {
    log::warning("user, group and sandbox changes take effect at the next start");
    next.user = config_.user;
    next.group = config_.group;
    next.sandbox = config_.sandbox;
  }
  if (next.pid_file != config_.pid_file) {
    log::warning("a new pid-file takes effect at the next start");
    next.pid_file = config_.pid_file;
  }
  // Reopened on every reload, for log rotation; a failure keeps the old file.
  if (std::string error = access_log_.open(next.access_log); !error.empty()) {
    log::error("{}", error);
    next.access_log = config_.access_log;
  }
  budget_.set_limit(next.max_connections);
  log::configure({next.log_level, next.log_format, log::settings().fd});
  if (next.admin != config_.admin) {
    log::warning("a new admin address takes effect at the next start");
    next.admin = config_.admin;
  }
  config_ = std::move(next);
  publish_status();
  log::info("configuration reloaded from {}: {} listener(s)", config_.config_file, active_.size());
}

void Daemon::store_sockets(const Active& active) noexcept {
  try {
    service_manager_.store_sockets(server_->local_address(active.index),
                                   server_->listening_descriptors(active.index));
  } catch (const std::exception& e) {
    log::warning("cannot give systemd the sockets of {}: {}", active.config.address, e.what());
  }
}

bool Daemon::upgrade() noexcept {
  try {
    // Every socket of every listener, each SO_REUSEPORT group whole: a
    // socket of a group that closed would drop the connections queued in it.
    std::vector<int> sockets;
    for (const auto& active : active_) {
      const auto group = server_->listening_descriptors(active.index);
      sockets.insert(sockets.end(), group.begin(), group.end());
    }
    if (admin_) {
      const auto group = admin_->listening_descriptors();
      sockets.insert(sockets.end(), group.begin(), group.end());
    }
    const pid_t successor = Upgrade::start(sockets, config_.upgrade_timeout);
    if (successor == 0) return false;
    log::info("upgrade: process {} serves now; this one stops accepting and drains", successor);
    service_manager_.main_pid(successor);
    // The sockets and their files are the new process's now.
    server_->keep_socket_files();
    if (admin_) admin_->hand_over();
    return true;
  } catch (const std::exception& e) {
    log::error("upgrade failed: {}; this process serves on", e.what());
    return false;
  }
}

void Daemon::publish_status() {
  std::vector<ListenerInfo> listeners;
  listeners.reserve(active_.size());
  for (const auto& active : active_) {
    ListenerInfo info;
    info.address = server_->local_address(active.index);
    info.service = active.config.service;
    switch (active.config.proxy.mode) {
      case ProxyMode::off:
        info.proxy = "off";
        break;
      case ProxyMode::required:
        info.proxy = "required";
        break;
      case ProxyMode::optional:
        info.proxy = "optional";
        break;
    }
    if (const auto& context = active.config.tls.context) {
      info.tls = true;
      info.certificates = context->certificates();
    }
    info.settings = settings_of(active.config);
    info.metrics = active.metrics;
    listeners.push_back(std::move(info));
  }
  status_->set_listeners(std::move(listeners), config_.max_connections);
}

void Daemon::log_refusals() const {
  for (const auto& active : active_) {
    const ListenerTotals totals = active.metrics->totals();
    std::string counts;
    for (int reason = 0; reason < kCloseReasons; ++reason) {
      const auto count = totals.refused[reason];
      if (count == 0) continue;
      counts += fmt::format("{}{} {}", counts.empty() ? "" : ", ", count,
                            to_string(static_cast<CloseReason>(reason)));
    }
    if (!counts.empty()) log::info("{}: refused {}", active.config.address, counts);
  }
}

}  // namespace salam::daemon
