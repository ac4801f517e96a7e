// salam, the daemon. See `salam --help` and docs/configuration.md.
#include <iostream>
#include <system_error>
#include <variant>

#include <salam/log.hpp>

#include "cli.hpp"
#include "daemon.hpp"

int main(int argc, char** argv) {
  using namespace salam::daemon;
  auto parsed = parse_command_line(argc, argv);
  if (const int* status = std::get_if<int>(&parsed)) return *status;
  const Invocation& invocation = std::get<Invocation>(parsed);

  DaemonConfig config;
  try {
    config = load_configuration(invocation.overrides);
  } catch (const ConfigError& e) {
    std::cerr << "salam: " << e.what() << "\n";
    return 2;
  }
  if (invocation.check_only) {
    std::cout << "salam: " << config.config_file << ": configuration is valid ("
              << config.listeners.size() << " listener(s))\n";
    return 0;
  }

  salam::log::configure({config.log_level, config.log_format, 2});
  try {
    Daemon daemon(invocation.overrides, std::move(config));
    return daemon.run();
  } catch (const std::exception& e) {  // cannot listen, cannot start a loop
    salam::log::critical("{}", e.what());
    salam::log::flush_thread_buffer();
    return 1;
  }
}
