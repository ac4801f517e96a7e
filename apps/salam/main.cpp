// salam, the daemon. See `salam --help` and docs/configuration.md (which
// lists the exit statuses).
#include <cstring>
#include <iostream>
#include <optional>
#include <system_error>
#include <variant>

#include <signal.h>

#include <salam/log.hpp>
#include <salam/printable.hpp>

#include "cli.hpp"
#include "daemon.hpp"
#include "exec/spawner.hpp"
#include "sandbox/sandbox.hpp"
#include "upgrade.hpp"

namespace {

// Before anything else, main() included: a SIGHUP, SIGTERM or SIGUSR2 that comes
// while salam starts waits for the signal loop instead of ending the
// process (the default action of all three). Only the dynamic loader runs earlier.
[[gnu::constructor(101)]] void block_stop_and_reload_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR2);
  ::pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace salam::daemon;
  Upgrade::remember_invocation(argc, argv);
  auto parsed = parse_command_line(argc, argv);
  if (const int* status = std::get_if<int>(&parsed)) return *status;
  const Invocation& invocation = std::get<Invocation>(parsed);

  DaemonConfig config;
  std::optional<Sandbox> sandbox;
  try {
    config = load_configuration(invocation.overrides);
    sandbox.emplace(config, invocation.check_only);  // the user looked up; nothing dropped yet
  } catch (const ConfigError& e) {
    std::cerr << "salam: " << e.what() << "\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "salam: out of memory while reading the configuration\n";
    return 2;
  }
  if (invocation.check_only) {
    for (const auto& listener : config.listeners) {
      if (!listener.tls.context) continue;
      for (const auto& warning : listener.tls.context->warnings()) {
        std::cout << "salam: warning: " << warning << "\n";
      }
    }
    std::cout << "salam: " << salam::printable(config.config_file, 256)
              << ": configuration is valid (" << config.listeners.size() << " listener(s))\n";
    return 0;
  }

  // The spawner is forked now, while this process has one thread: for the
  // exec service's programs, and for the new process of an upgrade, which
  // a confined process could not start unconfined.
  if (uses_exec(config) || config.sandbox) {
    if (const int error = exec::start_spawner(exec::spawner_policy(config)); error != 0) {
      std::cerr << "salam: cannot start the exec service's spawner process: "
                << std::strerror(error) << "\n";
      return 1;
    }
  }
  salam::log::configure({config.log_level, config.log_format, 2});
  try {
    Daemon daemon(invocation.overrides, std::move(config), std::move(*sandbox));
    return daemon.run();
  } catch (const ConfigError& e) {  // a file it cannot open, like the access log
    salam::log::flush_thread_buffer();
    std::cerr << "salam: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {  // cannot listen, cannot start a loop
    salam::log::critical("{}", e.what());
    salam::log::flush_thread_buffer();
    return 1;
  }
}
