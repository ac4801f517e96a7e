// The daemon's configuration: what the command line and the TOML file can
// say, with the defaults that make `salam` with no arguments the
// tutorial's greeting server.
//
// Both sources go through the setters below, so a value is checked the same
// way wherever it comes from, and the error names where it came from
// (`--read-size` or `salam.toml:7`).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <salam/access_list.hpp>
#include <salam/client_limits.hpp>
#include <salam/log.hpp>
#include <salam/loop.hpp>
#include <salam/time.hpp>

#include "exec/program.hpp"
#include "tls_config.hpp"

namespace salam::daemon {

using namespace std::chrono_literals;

// A configuration mistake: `where` is a flag name or FILE:LINE.
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string_view where, std::string_view what);
};

struct Quotes;  // services/qotd.hpp

// What a service may be told.
struct ServiceOptions {
  std::string message = "Hello, client!";
  std::size_t read_size = 1024;
  Duration read_timeout = 10s;   // the first read (greet)
  Duration idle_timeout = 60s;   // between reads and writes (echo, discard, chargen)
  Duration write_timeout = 30s;  // a write the client takes none of
  bool greet_first = false;      // greet: speak first, do not wait for input
  std::string quotes_file;       // qotd; empty: the built-in quotes
  std::shared_ptr<const Quotes> quotes;
  exec::ExecSettings exec_settings;               // exec
  std::shared_ptr<const exec::ExecProgram> exec;  // made of them by finish()
};

// Who may connect: rules tried in order (the inline ones, then the
// file's), then the default. finish() compiles them into `list`.
struct AccessConfig {
  std::vector<AccessRule> rules;
  std::string rules_file;  // re-read on every reload
  Access default_action = Access::allow;
  std::shared_ptr<const AccessList> list;
};

enum class ProxyMode : std::uint8_t { off, required, optional };

// The PROXY protocol on a listener: a header is read only from `trusted`
// peers; `required` refuses connections without one, `optional` also
// serves trusted peers whose first bytes are not a header (telling needs
// bytes: a trusted peer that sends nothing waits out the timeout).
struct ProxyConfig {
  ProxyMode mode = ProxyMode::off;
  std::vector<IpPrefix> trusted;
  Duration timeout = 5s;
  std::shared_ptr<const AccessList> trusted_list;  // made by finish()
};

inline constexpr int kDefaultSendBuffer = 128 * 1024;

struct ListenerConfig {
  std::string address = "127.0.0.1:8888";
  // The FileDescriptorName= of the systemd socket this listener takes, if
  // not the one on its address (a socket unit spells addresses its own way:
  // ListenStream=8888 listens on [::]:8888).
  std::string socket_name;
  std::string service = "greet";
  int backlog = 4096;
  bool reuse_port = true;
  bool defer_accept = false;  // greet: accept only once the client has sent something
  // SO_SNDBUF: what one client that stops reading can pin in the kernel is
  // about twice this; 0 leaves it to the kernel's autotuning (up to 4 MiB).
  int send_buffer = kDefaultSendBuffer;
  ServiceOptions options;
  AccessConfig access;

  ProxyConfig proxy;
  TlsConfig tls;
  Duration max_lifetime{};        // 0: none
  double min_rate = 0;            // bytes per second in and out; 0: none
  Duration min_rate_grace = 10s;  // before the minimum rate applies
  std::string origin;             // where it was defined, for messages
};

struct DaemonConfig {
  unsigned threads = 0;  // 0: one per CPU
  BackendKind backend = BackendKind::automatic;
  std::size_t max_connections = 10'000;
  Duration accept_grace{};  // SIGTERM: accepting for this long before the drain; 0: none
  Duration drain_timeout = 10s;
  Duration upgrade_timeout = 30s;  // for the new process to be ready (SIGUSR2)
  log::Format log_format = log::Format::text;
  log::Level log_level = log::Level::info;
  bool log_connections = true;  // a line when each connection opens and closes
  std::string access_log;       // a file for the access records; empty: the main log
  // Per-client limits (off unless asked for: max_connections and rate 0).
  ClientLimitOptions client_limits;
  std::string limit_message;      // sent to clients refused by a limit, then close
  double tls_handshake_rate = 0;  // TLS handshakes per second, over all listeners; 0: no limit
  std::string config_file;
  std::string pid_file;  // empty: none
  std::string admin;     // the admin endpoint's address; empty: none
  // Confinement (docs/security.md): the user and group to run as once the
  // listeners are open (empty: stay who started salam), and whether to
  // install the system call filter and the file system rules.
  std::string user;
  std::string group;
  bool sandbox = true;
  std::vector<ListenerConfig> listeners;
};

// Checked setters: each throws ConfigError naming `where`.
// An IP:PORT or unix:/path, in the one spelling reloads match by.
std::string checked_address(std::string_view value, std::string_view where);
void set_address(ListenerConfig& listener, std::string_view value, std::string_view where);
void set_admin(DaemonConfig& config, std::string_view value, std::string_view where);
void set_service(ListenerConfig& listener, std::string_view value, std::string_view where);
void set_socket_name(ListenerConfig& listener, std::string_view value, std::string_view where);
void set_backlog(ListenerConfig& listener, std::int64_t value, std::string_view where);
void set_message(ServiceOptions& options, std::string_view escaped, std::string_view where);
void set_message_text(std::string& field, std::string_view escaped, std::string_view where);

void set_read_size(ServiceOptions& options, std::int64_t value, std::string_view where);
void set_send_buffer(ListenerConfig& listener, std::int64_t value, std::string_view where);
void set_timeout(Duration& field, std::string_view value, std::string_view where);
void set_access_rule(AccessConfig& access, std::string_view rule, std::string_view where);
void set_access_default(AccessConfig& access, std::string_view value, std::string_view where);
void set_proxy_mode(ProxyConfig& proxy, std::string_view value, std::string_view where);
void add_proxy_trusted(ProxyConfig& proxy, std::string_view prefix, std::string_view where);
void set_min_rate(ListenerConfig& listener, std::int64_t value, std::string_view where);
void set_client_limit(std::size_t& field, std::int64_t value, std::int64_t max,
                      std::string_view what, std::string_view where);
void set_client_rate(double& field, double value, std::string_view what, std::string_view where);
void set_client_prefix(int& field, std::int64_t value, int max, std::string_view where);
void set_threads(DaemonConfig& config, std::int64_t value, std::string_view where);
void set_backend(DaemonConfig& config, std::string_view value, std::string_view where);
void set_max_connections(DaemonConfig& config, std::int64_t value, std::string_view where);
void set_log_format(DaemonConfig& config, std::string_view value, std::string_view where);
void set_log_level(DaemonConfig& config, std::string_view value, std::string_view where);
void set_tls_handshake_rate(DaemonConfig& config, double value, std::string_view where);
void set_sandbox(DaemonConfig& config, std::string_view value, std::string_view where);

// Whole-configuration checks and loading of referenced files (quotes):
// throws ConfigError.
void finish(DaemonConfig& config);

// True if a listener runs the exec service (which needs the spawner).
bool uses_exec(const DaemonConfig& config) noexcept;

// The exec service's settings, from either source.
void set_exec_limit(exec::ExecSettings& exec, exec::Limit limit, std::string_view value,
                    std::string_view where);
void set_max_children(exec::ExecSettings& exec, std::int64_t value, std::string_view where);

}  // namespace salam::daemon
