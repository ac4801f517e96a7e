#include "cli.hpp"

#include <cstdint>
#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <salam/printable.hpp>

#include "config_file.hpp"
#include "services/service.hpp"

#ifndef SALAM_VERSION
#define SALAM_VERSION "unknown"
#endif

namespace salam::daemon {

namespace {

constexpr const char* kDescription =
    "salam: a small, fast TCP service daemon.\n\n"
    "With no arguments it is the greeting server of the classic socket tutorial: it listens on\n"
    "127.0.0.1:8888, logs each client, reads what the client sends first (up to 1024 bytes),\n"
    "replies \"Hello, client!\" and closes - serving every client at once.";

std::string services_footer() {
  std::string text = "Services:\n";
  for (const auto& service : all_services()) {
    text += fmt::format("  {:<9} {}\n", service.name, service.summary);
  }
  text +=
      "\nDurations are written like 500ms, 10s, 2m or 1h.\n"
      "\nSignals:\n"
      "  SIGTERM, SIGINT  stop accepting (after --accept-grace, if set), let connections finish\n"
      "                   for --drain-timeout, then close them; a second signal closes them at "
      "once\n"
      "  SIGHUP           re-read --config and the certificates (a bad file is rejected and the\n"
      "                   running configuration kept); reopen --access-log\n"
      "  SIGUSR2          upgrade: start the binary again, hand it the listening sockets, drain\n"
      "\nExamples:\n"
      "  salam                                       the tutorial's greeting server\n"
      "  salam --listen [::]:7 --service echo        an echo server on IPv6 and IPv4\n"
      "  salam --greet-first --message 'hi\\r\\n'      a banner server\n"
      "  salam --config /etc/salam/salam.toml        several listeners (salam.toml(5))\n"
      "  salam --check-config /etc/salam/salam.toml  validate a file and exit";
  return text;
}

// Gives each option the same shape: a group, a value name, a description.
template <typename T>
CLI::Option* option(CLI::App& app, const char* name, std::optional<T>& target,
                    const char* value_name, const char* group, const std::string& help) {
  return app
      .add_option_function<T>(
          name, [&target](const T& value) { target = value; }, help)
      ->type_name(value_name)
      ->group(group);
}

}  // namespace

std::string version_text() {
  std::string why_not;
  BackendKind chosen = BackendKind::epoll;
  try {
    chosen = resolve_backend(BackendKind::automatic, &why_not);
  } catch (const std::exception& e) {
    why_not = e.what();
  }
  return fmt::format(
      "salam {}\n"
      "compiler: {}\n"
      "backends: io_uring ({}), epoll (available)\n"
      "default backend here: {}",
      SALAM_VERSION,
#if defined(__clang__)
      "clang " __clang_version__,
#else
      "g++ " __VERSION__,
#endif
      why_not.empty() ? "available" : "unavailable: " + why_not, to_string(chosen));
}

std::variant<Invocation, int> parse_command_line(int argc, char** argv) {
  CLI::App app(kDescription, "salam");
  app.formatter(std::make_shared<CLI::Formatter>());
  app.get_formatter()->column_width(34);
  app.footer(services_footer());
  app.set_version_flag("--version", version_text(), "Print the version and build information");
  app.set_help_flag("-h,--help", "Print this help and exit");

  Invocation invocation;
  Overrides& o = invocation.overrides;
  const char* listening = "Listening";
  const char* service = "Service";
  const char* limits = "Limits and timeouts";
  const char* access = "Access control";
  const char* proxy = "PROXY protocol";
  const char* tls = "TLS";
  const char* engine = "Engine";
  const char* logging = "Logging";
  const char* configuration = "Configuration";
  const char* confinement = "Confinement";

  app.add_option("-l,--listen", o.listen,
                 "Listen on ADDR:PORT ([::]:PORT for IPv6 and IPv4, unix:/path for a Unix socket); "
                 "repeat for several (default 127.0.0.1:8888)")
      ->type_name("ADDR")
      ->group(listening);
  option(app, "--backlog", o.backlog, "N", listening,
         "Accept queue length, clamped to net.core.somaxconn (default 4096; 5 reproduces the "
         "tutorial)");
  app.add_flag("--defer-accept", o.defer_accept,
               "greet: let the kernel accept a connection only once the client has sent its "
               "message (TCP_DEFER_ACCEPT)")
      ->group(listening);
  app.add_flag_function(
         "--reuse-port,!--no-reuse-port", [&o](std::int64_t count) { o.reuse_port = count > 0; },
         "one listening socket per thread (SO_REUSEPORT, the default), or one that all threads "
         "share (--no-reuse-port)")
      ->group(listening);

  option(app, "-s,--service", o.service, "NAME", service,
         "What to do with each connection (default greet; see Services below)");
  option(app, "-m,--message", o.message, "TEXT", service,
         "greet: the reply, with escapes like \\r\\n \\t \\xHH (default \"Hello, client!\")");
  option(app, "--read-size", o.read_size, "N", service,
         "greet: read at most N bytes, 1..65536 (default 1024)");
  app.add_flag("--greet-first", o.greet_first,
               "greet: send the message at once, without waiting for input (a banner)")
      ->group(service);
  option(app, "--quotes-file", o.quotes_file, "FILE", service,
         "qotd: quotes separated by lines holding only %, at most 512 bytes each");
  app.add_option("--exec-env", o.exec_env,
                 "exec: NAME passes salam's variable to the program, NAME=VALUE sets one; "
                 "repeat for several (the environment is otherwise only the connection's)")
      ->type_name("VAR")
      ->group(service);
  option(app, "--exec-user", o.exec_user, "USER", service,
         "exec: run the program as USER, with USER's groups (salam must be root)");
  option(app, "--exec-group", o.exec_group, "GROUP", service,
         "exec: run the program with GROUP as its group (and only group)");
  option(app, "--exec-timeout", o.exec_timeout, "DURATION", service,
         "exec: stop a program running longer (SIGTERM, SIGKILL 3s later; default: no limit)");
  option(app, "--exec-max-children", o.exec_max_children, "N", service,
         "exec: programs running at once per listener; more connections are closed "
         "(default 100)");
  for (std::size_t i = 0; i < exec::kLimits; ++i) {
    const auto limit = static_cast<exec::Limit>(i);
    static constexpr std::array<const char*, exec::kLimits> kHelp = {
        "exec: the program's address space (RLIMIT_AS), bytes or with K, M, G",
        "exec: processes of the program's user (RLIMIT_NPROC)",
        "exec: the program's open descriptors (RLIMIT_NOFILE)",
        "exec: the program's CPU seconds (RLIMIT_CPU)"};
    option(app, fmt::format("--{}", exec::limit_key(limit)).c_str(), o.exec_limits[i], "N", service,
           kHelp[i]);
  }
  app.add_flag("--exec-sandbox", o.exec_sandbox,
               "exec: run the program with no new privileges and a seccomp filter (no modules, "
               "mounts, ptrace, namespaces, BPF, io_uring)")
      ->group(service);

  option(app, "--max-connections", o.max_connections, "N", limits,
         "Connections open at once, over all threads; more are closed at once (default 10000)");
  option(app, "--read-timeout", o.read_timeout, "DURATION", limits,
         "greet: how long to wait for the client's message (default 10s)");
  option(app, "--idle-timeout", o.idle_timeout, "DURATION", limits,
         "How long a connection may neither read nor write (default 1m)");
  option(app, "--write-timeout", o.write_timeout, "DURATION", limits,
         "How long a write may wait for the client to take any of it (default 30s)");
  option(app, "--send-buffer", o.send_buffer, "BYTES", limits,
         "Kernel send buffer per connection (SO_SNDBUF): bounds what a client that stops "
         "reading pins in kernel memory (default 131072; 0: the kernel's autotuning)");
  option(app, "--accept-grace", o.accept_grace, "DURATION", limits,
         "On SIGTERM, how long to keep accepting (the admin /ready saying 503) before closing "
         "the listeners, so that a balancer takes the instance out first (default none)");
  option(app, "--drain-timeout", o.drain_timeout, "DURATION", limits,
         "On SIGTERM, how long connections may take to finish (default 10s)");
  option(app, "--upgrade-timeout", o.upgrade_timeout, "DURATION", limits,
         "How long the new process started by SIGUSR2 has to be ready (default 30s)");

  option(app, "--max-lifetime", o.max_lifetime, "DURATION", limits,
         "Close connections older than this (default: no limit)");
  option(app, "--min-rate", o.min_rate, "BYTES/S", limits,
         "Close connections slower than this, in and out, on average (default 0: no limit)");
  option(app, "--min-rate-grace", o.min_rate_grace, "DURATION", limits,
         "How long a connection may be slow at first (default 10s)");
  option(app, "--max-connections-per-client", o.max_connections_per_client, "N", limits,
         "Connections one client may have open (default 0: no limit)");
  option(app, "--connection-rate", o.connection_rate, "N", limits,
         "New connections per second one client may open (default 0: no limit)");
  option(app, "--connection-burst", o.connection_burst, "N", limits,
         "Connections a client may open at once above that rate (default 10)");
  option(app, "--client-prefix-v4", o.client_prefix_v4, "BITS", limits,
         "IPv4 addresses that count as one client: /BITS (default 32)");
  option(app, "--client-prefix-v6", o.client_prefix_v6, "BITS", limits,
         "IPv6 addresses that count as one client: /BITS (default 64)");
  option(app, "--max-clients", o.max_clients, "N", limits,
         "Clients whose counts are kept; the idle longest are forgotten first (default 100000)");
  option(app, "--limit-message", o.limit_message, "TEXT", limits,
         "Send this to a client refused by a limit before closing (default: close at once)");

  auto rule = [&o](const char* action) {
    return [&o, action](const std::string& prefix) {
      o.access_rules.push_back(std::string(action) + " " + prefix);
    };
  };
  app.add_option_function<std::string>("--allow", rule("allow"),
                                       "Allow clients from PREFIX (e.g. 10.0.0.0/8); rules are "
                                       "tried in order, the first that matches decides")
      ->type_name("PREFIX")
      ->trigger_on_parse()
      ->group(access);
  app.add_option_function<std::string>("--deny", rule("deny"), "Deny clients from PREFIX")
      ->type_name("PREFIX")
      ->trigger_on_parse()
      ->group(access);
  option(app, "--access-file", o.access_file, "FILE", access,
         "More rules, one per line ('allow PREFIX' or 'deny PREFIX'), re-read on SIGHUP");
  option(app, "--access-default", o.access_default, "ACTION", access,
         "allow (default) or deny: what happens when no rule matches");

  option(
      app, "--proxy-protocol", o.proxy_protocol, "MODE", proxy,
      "off (default), required, or optional: read a PROXY v1/v2 header for the client's address");
  app.add_option("--proxy-trusted", o.proxy_trusted,
                 "PREFIX of balancers whose headers to believe; repeat for several (required with "
                 "--proxy-protocol)")
      ->type_name("PREFIX")
      ->group(proxy);
  option(app, "--proxy-timeout", o.proxy_timeout, "DURATION", proxy,
         "How long to wait for the header (default 5s)");

  app.add_option("--tls-cert", o.tls_cert,
                 "Serve TLS with this PEM file: the certificate, its chain, and the key unless "
                 "--tls-key gives it; repeat for several, chosen by SNI (the first is the default)")
      ->type_name("FILE")
      ->group(tls);
  app.add_option("--tls-key", o.tls_key,
                 "The private key of each --tls-cert, in the same order (PEM, no passphrase)")
      ->type_name("FILE")
      ->group(tls);
  for (const auto& setting : tls_settings()) {
    const std::string name(setting.name);
    app.add_option_function<std::string>(
           "--" + name,
           [&o, name](const std::string& value) { o.tls_settings.emplace_back(name, value); },
           std::string(setting.help))
        ->type_name(std::string(setting.value_name))
        ->group(tls);
  }
  option(app, "--tls-handshake-rate", o.tls_handshake_rate, "N", tls,
         "TLS handshakes per second over all listeners; more are refused before any crypto "
         "(default 0: no limit)");

  option(app, "-t,--threads", o.threads, "N", engine,
         "Event-loop threads, one per core by default (0)");
  option(app, "--backend", o.backend, "NAME", engine,
         "auto, io_uring or epoll (default auto: io_uring where the kernel allows it)");

  option(app, "--log-format", o.log_format, "FORMAT", logging,
         "text (default) or json: one JSON object per line");
  option(app, "--log-level", o.log_level, "LEVEL", logging,
         "debug, info (default), warning, error, critical or off");
  app.add_flag("-q,--quiet", o.quiet, "No log line per connection (start, stop and problems only)")
      ->group(logging);
  option(app, "--access-log", o.access_log, "FILE", logging,
         "Write the per-connection records to FILE (reopened on SIGHUP, for log rotation)");

  option(app, "--admin", o.admin, "ADDR", configuration,
         "Serve metrics (/metrics), a status page (/), /status.json, /ready and /live over "
         "HTTP on ADDR (IP:PORT or unix:/path); off by default");
  option(app, "--pid-file", o.pid_file, "FILE", configuration,
         "Write the process id to FILE once listening (atomically); removed at exit");
  option(app, "-c,--config", o.config_file, "FILE", configuration,
         "Read a TOML configuration file; flags override it");
  option(app, "--user", o.user, "NAME", confinement,
         "Once the listeners are open, run as this user (salam must be started as root): its "
         "group and supplementary groups, no capability but CAP_NET_BIND_SERVICE");
  option(app, "--group", o.group, "NAME", confinement,
         "With --user: this group instead of the user's own");
  option(app, "--sandbox", o.sandbox, "on|off", confinement,
         "on (default): a system call filter and file system rules (Landlock) once started; "
         "off: neither");
  std::optional<std::string> check_file;
  option(app, "--check-config", check_file, "FILE", configuration,
         "Check a configuration file (and the flags with it) and exit");

  // Everything after "--" is the exec service's program and its arguments,
  // as tcpserver takes them after its address.
  int own = argc;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--") {
      own = i;
      o.exec_command.assign(argv + i + 1, argv + argc);
      break;
    }
  }
  try {
    app.parse(own, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForVersion&) {
    std::cout << version_text() << "\n";
    return 0;
  } catch (const CLI::ParseError& e) {
    // The message may quote the command line: one short printable line.
    std::cerr << "salam: " << printable(e.what(), 300) << " (see salam --help)\n";
    return 2;
  }
  if (check_file) {
    if (o.config_file && *o.config_file != *check_file) {
      std::cerr << "salam: --check-config and --config name different files\n";
      return 2;
    }
    o.config_file = check_file;
    invocation.check_only = true;
  }
  return invocation;
}

namespace {

void apply_exec_overrides(const Overrides& o, exec::ExecSettings& exec) {
  if (!o.exec_command.empty()) exec.command = o.exec_command;
  if (!o.exec_env.empty()) exec.env = o.exec_env;
  if (o.exec_user) exec.user = *o.exec_user;
  if (o.exec_group) exec.group = *o.exec_group;
  if (o.exec_timeout) set_timeout(exec.timeout, *o.exec_timeout, "--exec-timeout");
  if (o.exec_max_children) set_max_children(exec, *o.exec_max_children, "--exec-max-children");
  for (std::size_t i = 0; i < exec::kLimits; ++i) {
    const auto limit = static_cast<exec::Limit>(i);
    if (o.exec_limits[i]) {
      set_exec_limit(exec, limit, *o.exec_limits[i], fmt::format("--{}", exec::limit_key(limit)));
    }
  }
  if (o.exec_sandbox) exec.sandbox = true;
}

}  // namespace

DaemonConfig load_configuration(const Overrides& o) {
  DaemonConfig config;
  ListenerConfig default_listener;
  default_listener.origin = "the default listener";
  config.listeners.push_back(std::move(default_listener));

  if (o.config_file) {
    config.config_file = *o.config_file;
    apply_config_file(config, *o.config_file);
  }
  if (!o.listen.empty()) {
    config.listeners.clear();
    for (const auto& address : o.listen) {
      ListenerConfig listener;
      listener.origin = "--listen " + printable(address);
      set_address(listener, address, "--listen");
      config.listeners.push_back(std::move(listener));
    }
  }
  // Listener and service flags apply to every listener.
  for (auto& listener : config.listeners) {
    ServiceOptions& options = listener.options;
    if (o.service) set_service(listener, *o.service, "--service");
    if (o.backlog) set_backlog(listener, *o.backlog, "--backlog");
    if (o.reuse_port) listener.reuse_port = *o.reuse_port;
    if (o.defer_accept) listener.defer_accept = true;
    if (o.message) set_message(options, *o.message, "--message");
    if (o.read_size) set_read_size(options, *o.read_size, "--read-size");
    if (o.read_timeout) set_timeout(options.read_timeout, *o.read_timeout, "--read-timeout");
    if (o.idle_timeout) set_timeout(options.idle_timeout, *o.idle_timeout, "--idle-timeout");
    if (o.write_timeout) set_timeout(options.write_timeout, *o.write_timeout, "--write-timeout");
    if (o.send_buffer) set_send_buffer(listener, *o.send_buffer, "--send-buffer");
    if (o.greet_first) options.greet_first = true;
    if (o.quotes_file) options.quotes_file = *o.quotes_file;
    if (listener.service == "exec") apply_exec_overrides(o, options.exec_settings);
    if (!o.access_rules.empty()) {
      listener.access.rules.clear();
      for (const auto& rule : o.access_rules)
        set_access_rule(listener.access, rule, "--allow/--deny");
    }
    if (o.access_file) listener.access.rules_file = *o.access_file;
    if (o.access_default)
      set_access_default(listener.access, *o.access_default, "--access-default");
    if (o.proxy_protocol) set_proxy_mode(listener.proxy, *o.proxy_protocol, "--proxy-protocol");
    if (!o.proxy_trusted.empty()) {
      listener.proxy.trusted.clear();
      for (const auto& prefix : o.proxy_trusted) {
        add_proxy_trusted(listener.proxy, prefix, "--proxy-trusted");
      }
    }
    if (o.proxy_timeout) set_timeout(listener.proxy.timeout, *o.proxy_timeout, "--proxy-timeout");
    if (o.max_lifetime) set_timeout(listener.max_lifetime, *o.max_lifetime, "--max-lifetime");
    if (o.min_rate) set_min_rate(listener, *o.min_rate, "--min-rate");
    if (o.min_rate_grace)
      set_timeout(listener.min_rate_grace, *o.min_rate_grace, "--min-rate-grace");
    if (!o.tls_cert.empty()) listener.tls.cert_files = o.tls_cert;
    if (!o.tls_key.empty()) listener.tls.key_files = o.tls_key;
    for (const auto& [name, value] : o.tls_settings) {
      set_tls_setting(listener.tls, name, value, "--" + name);
    }
  }
  ClientLimitOptions& limits = config.client_limits;
  if (o.max_connections_per_client) {
    set_client_limit(limits.max_connections, *o.max_connections_per_client, 1'000'000,
                     "connections per client", "--max-connections-per-client");
  }
  if (o.connection_rate) {
    set_client_rate(limits.rate, *o.connection_rate, "connection rate", "--connection-rate");
  }
  if (o.connection_burst) {
    set_client_rate(limits.burst, *o.connection_burst, "connection burst", "--connection-burst");
  }
  if (o.client_prefix_v4)
    set_client_prefix(limits.ipv4_prefix, *o.client_prefix_v4, 32, "--client-prefix-v4");
  if (o.client_prefix_v6) {
    set_client_prefix(limits.ipv6_prefix, *o.client_prefix_v6, 128, "--client-prefix-v6");
  }
  if (o.max_clients) {
    set_client_limit(limits.max_clients, *o.max_clients, 100'000'000, "max clients",
                     "--max-clients");
  }
  if (o.limit_message) set_message_text(config.limit_message, *o.limit_message, "--limit-message");
  if (o.access_log) config.access_log = *o.access_log;
  if (o.pid_file) config.pid_file = *o.pid_file;
  if (o.admin) set_admin(config, *o.admin, "--admin");
  if (o.tls_handshake_rate) {
    set_tls_handshake_rate(config, *o.tls_handshake_rate, "--tls-handshake-rate");
  }
  if (o.threads) set_threads(config, *o.threads, "--threads");
  if (o.backend) set_backend(config, *o.backend, "--backend");
  // As every libsalam program does, salam lets the environment choose the
  // backend when nothing else does; a bad value is a mistake found here.
  if (const char* chosen = std::getenv("SALAM_BACKEND");
      config.backend == BackendKind::automatic && chosen != nullptr && *chosen != '\0') {
    set_backend(config, chosen, "SALAM_BACKEND");
  }
  if (o.max_connections) set_max_connections(config, *o.max_connections, "--max-connections");
  if (o.accept_grace) set_timeout(config.accept_grace, *o.accept_grace, "--accept-grace");
  if (o.drain_timeout) set_timeout(config.drain_timeout, *o.drain_timeout, "--drain-timeout");
  if (o.upgrade_timeout) {
    set_timeout(config.upgrade_timeout, *o.upgrade_timeout, "--upgrade-timeout");
  }
  if (o.log_format) set_log_format(config, *o.log_format, "--log-format");
  if (o.log_level) set_log_level(config, *o.log_level, "--log-level");
  if (o.quiet) config.log_connections = false;
  if (!o.exec_command.empty() && !uses_exec(config)) {
    throw ConfigError("--", "a program after -- is for the exec service: add --service exec");
  }
  if (o.user) config.user = *o.user;
  if (o.group) config.group = *o.group;
  if (o.sandbox) set_sandbox(config, *o.sandbox, "--sandbox");
  finish(config);
  return config;
}

}  // namespace salam::daemon
