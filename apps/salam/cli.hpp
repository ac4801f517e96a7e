// The command line: flags for everything common; a TOML file for the rest.
// Flags override the file, on start and on every reload.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "config.hpp"

namespace salam::daemon {

// What the command line said, kept to be applied again over the file at
// each reload.
struct Overrides {
  std::optional<std::string> config_file;
  std::vector<std::string> listen;
  std::optional<std::string> service;
  std::optional<std::string> message;
  std::optional<std::int64_t> read_size;
  std::optional<std::string> read_timeout;
  std::optional<std::string> idle_timeout;
  std::optional<std::string> write_timeout;
  std::optional<std::int64_t> send_buffer;
  bool greet_first = false;
  std::optional<std::string> quotes_file;
  std::optional<std::int64_t> backlog;
  // --reuse-port (true) or --no-reuse-port (false); unset: the file's.
  std::optional<bool> reuse_port;
  bool defer_accept = false;

  std::vector<std::string> access_rules;  // "allow PREFIX" / "deny PREFIX", in command-line order
  std::optional<std::string> access_file;
  std::optional<std::string> access_default;
  std::optional<std::string> proxy_protocol;
  std::vector<std::string> proxy_trusted;
  std::optional<std::string> proxy_timeout;
  std::optional<std::string> max_lifetime;
  std::optional<std::int64_t> min_rate;
  std::optional<std::string> min_rate_grace;
  std::optional<std::int64_t> max_connections_per_client;
  std::optional<double> connection_rate;
  std::optional<double> connection_burst;
  std::optional<std::int64_t> client_prefix_v4;
  std::optional<std::int64_t> client_prefix_v6;
  std::optional<std::int64_t> max_clients;
  std::optional<std::string> limit_message;
  std::optional<std::string> access_log;
  std::optional<std::string> pid_file;
  std::optional<std::string> admin;
  std::optional<std::int64_t> threads;
  std::optional<std::string> backend;
  std::optional<std::int64_t> max_connections;
  std::optional<std::string> accept_grace;
  std::optional<std::string> drain_timeout;
  std::optional<std::string> upgrade_timeout;
  std::optional<std::string> log_format;
  std::optional<std::string> log_level;
  bool quiet = false;
  std::vector<std::string> tls_cert;
  std::vector<std::string> tls_key;
  std::vector<std::pair<std::string, std::string>> tls_settings;  // (name, value), in order
  std::optional<double> tls_handshake_rate;
  // The exec service: the program and arguments after --, and its limits.
  std::vector<std::string> exec_command;
  std::vector<std::string> exec_env;
  std::optional<std::string> exec_user;
  std::optional<std::string> exec_group;
  std::optional<std::string> exec_timeout;
  std::optional<std::int64_t> exec_max_children;
  std::array<std::optional<std::string>, exec::kLimits> exec_limits;
  bool exec_sandbox = false;
  std::optional<std::string> user;
  std::optional<std::string> group;
  std::optional<std::string> sandbox;
};

struct Invocation {
  Overrides overrides;
  bool check_only = false;  // --check-config: validate and exit
};

// Parses the command line. Returns what to run, or the exit status when the
// command line was handled here: 0 after --help or --version, 2 after a
// mistake (with one line on stderr naming the flag).
std::variant<Invocation, int> parse_command_line(int argc, char** argv);

// Defaults, then the file, then the flags; checked and completed. Throws
// ConfigError.
DaemonConfig load_configuration(const Overrides& overrides);

// `salam --version`: version, compiler, and which backends this kernel allows.
std::string version_text();

}  // namespace salam::daemon
