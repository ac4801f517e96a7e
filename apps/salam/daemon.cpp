#include "daemon.hpp"

#include <salam/log.hpp>

#include "session.hpp"

namespace salam::daemon {

namespace {

ListenOptions listen_options(const ListenerConfig& listener) {
  ListenOptions options;
  options.address = listener.address;
  options.backlog = listener.backlog;
  options.reuse_port = listener.reuse_port;
  // Interactive services answer each read at once; do not let Nagle wait.
  options.no_delay = listener.service == "echo";
  return options;
}

bool same_socket(const ListenerConfig& a, const ListenerConfig& b) {
  return a.backlog == b.backlog && a.reuse_port == b.reuse_port;
}

}  // namespace

Daemon::Daemon(Overrides overrides, DaemonConfig config)
    : overrides_(std::move(overrides)),
      config_(std::move(config)),
      budget_(config_.max_connections) {
  ServerOptions options;
  options.threads = config_.threads;
  options.loop.backend = config_.backend;
  server_ = std::make_unique<Server>(options);
  for (const auto& listener : config_.listeners)
    active_.push_back(Active{listener, open(listener, config_.log_connections)});
}

int Daemon::run() {
  return run_until_signal(*server_, config_.drain_timeout, [this] { reload(); });
}

HandlerFactory Daemon::handler_for(const ListenerConfig& listener, bool log_connections) {
  auto shared = std::make_shared<ListenerRuntime>();
  shared->config = listener;
  shared->service = find_service(listener.service);
  shared->budget = &budget_;
  shared->is_unix = listener.address.starts_with("unix:");
  shared->log_connections = log_connections;

  return [shared] {
    // Each shard gets its own copy: sessions count references shard-locally.
    auto local = std::make_shared<const ListenerRuntime>(*shared);
    return Handler([local](Connection client) { return serve_session(std::move(client), local); });
  };
}

std::size_t Daemon::open(const ListenerConfig& listener, bool log_connections) {
  const std::size_t index =
      server_->listen(listen_options(listener), handler_for(listener, log_connections));
  // Logs name the listener by where it really listens (port 0 becomes the
  // port the kernel chose).
  if (std::string bound = server_->local_address(index); bound != listener.address) {
    ListenerConfig named = listener;
    named.address = std::move(bound);
    server_->replace_handler(index, handler_for(named, log_connections));
  }
  return index;
}


const Daemon::Active* Daemon::find(const std::string& address) const {
  for (const auto& active : active_) {
    if (active.config.address == address) return &active;
  }
  return nullptr;
}

void Daemon::reload() {
  if (!overrides_.config_file) {
    log::warning("SIGHUP: no configuration file to re-read (start salam with --config FILE)");
    return;
  }
  DaemonConfig next;
  try {
    next = load_configuration(overrides_);
  } catch (const ConfigError& e) {
    log::error("reload rejected, the running configuration stays: {}", e.what());
    return;
  }

  // New listeners first: if one cannot be opened, nothing changes.
  std::vector<Active> added;
  for (const auto& listener : next.listeners) {
    if (find(listener.address) != nullptr) continue;
    try {
      added.push_back(Active{listener, open(listener, next.log_connections)});
    } catch (const std::exception& e) {
      for (const auto& undo : added)
        server_->close_listener(undo.index);
      log::error("reload rejected, the running configuration stays: {}", e.what());
      return;
    }
  }

  std::vector<Active> kept;
  for (const auto& active : active_) {
    auto wanted = std::find_if(next.listeners.begin(), next.listeners.end(),
                               [&](const auto& l) { return l.address == active.config.address; });
    if (wanted == next.listeners.end()) {
      server_->close_listener(active.index);
      continue;
    }
    if (!same_socket(active.config, *wanted)) {
      log::warning("{}: backlog and reuse-port changes take effect when the listener is reopened",
                   wanted->origin);
    }
    server_->replace_handler(active.index, handler_for(*wanted, next.log_connections));
    kept.push_back(Active{*wanted, active.index});
  }
  kept.insert(kept.end(), added.begin(), added.end());
  active_ = std::move(kept);

  if (next.threads != config_.threads || next.backend != config_.backend) {
    log::warning("threads and backend changes take effect at the next start");
  }
  budget_.set_limit(next.max_connections);
  log::configure({next.log_level, next.log_format, log::settings().fd});
  config_ = std::move(next);

  log::info("configuration reloaded from {}: {} listener(s)", config_.config_file, active_.size());
}

}  // namespace salam::daemon
