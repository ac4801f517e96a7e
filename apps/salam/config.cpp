#include "config.hpp"

#include <algorithm>
#include <optional>
#include <string_view>
#include <unordered_map>

#include <fmt/format.h>

#include <salam/address.hpp>
#include <salam/printable.hpp>

#include "duration.hpp"
#include "escapes.hpp"
#include "input_file.hpp"
#include "sandbox/privileges.hpp"
#include "services/qotd.hpp"
#include "services/service.hpp"

namespace salam::daemon {

namespace {

constexpr std::size_t kMaxMessage = 64 * 1024;

void check_range(std::int64_t value, std::int64_t low, std::int64_t high, std::string_view what,
                 std::string_view where) {
  if (value < low || value > high) {
    throw ConfigError(where,
                      fmt::format("{} must be between {} and {} (got {})", what, low, high, value));
  }
}

std::string service_names() {
  std::string names;
  for (const auto& service : all_services()) {
    if (!names.empty()) names += ", ";
    names += service.name;
  }
  return names;
}

void finish_access(ListenerConfig& listener) {
  AccessConfig& access = listener.access;
  std::vector<AccessRule> rules = access.rules;
  if (!access.rules_file.empty()) {
    const std::string text = read_input_file_or_throw(access.rules_file, kMaxAccessFile,
                                                      "access rules file", listener.origin);
    try {
      auto from_file = AccessList::parse_rules(text, access.rules_file);
      rules.insert(rules.end(), from_file.begin(), from_file.end());
    } catch (const std::invalid_argument& e) {
      throw ConfigError("", e.what());
    }
  }
  if (rules.empty() && access.default_action == Access::allow) {
    access.list.reset();  // nothing to check
    return;
  }
  access.list = std::make_shared<const AccessList>(rules, access.default_action);
}

void finish_proxy(ListenerConfig& listener) {
  ProxyConfig& proxy = listener.proxy;
  if (proxy.mode == ProxyMode::off) return;
  if (proxy.trusted.empty()) {
    throw ConfigError(
        listener.origin,
        "the PROXY protocol needs proxy-trusted: the addresses of the balancers whose "
        "headers to believe");
  }
  std::vector<AccessRule> rules;
  for (const auto& prefix : proxy.trusted)
    rules.push_back(AccessRule{Access::allow, prefix});
  proxy.trusted_list = std::make_shared<const AccessList>(rules, Access::deny);
}

}  // namespace

ConfigError::ConfigError(std::string_view where, std::string_view what)
    : std::runtime_error(where.empty() ? std::string(what) : fmt::format("{}: {}", where, what)) {}

std::string checked_address(std::string_view value, std::string_view where) {
  if (value.starts_with("unix:")) {
    if (value.size() == 5) throw ConfigError(where, "missing path after unix:");
    if (value.size() - 5 > 107) throw ConfigError(where, "Unix socket path longer than 107 bytes");
    return std::string(value);
  }
  std::string_view why;
  auto address = SocketAddress::try_parse(value, &why);
  if (!address)
    throw ConfigError(where, fmt::format("bad address '{}': {}", printable(value), why));
  return address->to_string();  // one spelling, so that reloads can match listeners
}

void set_address(ListenerConfig& listener, std::string_view value, std::string_view where) {
  listener.address = checked_address(value, where);
}

void set_admin(DaemonConfig& config, std::string_view value, std::string_view where) {
  config.admin = value.empty() ? std::string() : checked_address(value, where);
}

void set_socket_name(ListenerConfig& listener, std::string_view value, std::string_view where) {
  // systemd's rule for FileDescriptorName=: up to 255 printable ASCII
  // characters, no colon.
  const bool valid = !value.empty() && value.size() <= 255 &&
                     std::all_of(value.begin(), value.end(),
                                 [](char c) { return c > 0x20 && c < 0x7f && c != ':'; });
  if (!valid) {
    throw ConfigError(where, fmt::format("bad socket name '{}': 1 to 255 printable characters, "
                                         "no colon or space (as FileDescriptorName= takes)",
                                         printable(value)));
  }
  listener.socket_name = std::string(value);
}

void set_service(ListenerConfig& listener, std::string_view value, std::string_view where) {
  if (find_service(value) == nullptr) {
    throw ConfigError(
        where, fmt::format("unknown service '{}' (known: {})", printable(value), service_names()));
  }
  listener.service = std::string(value);
}

void set_backlog(ListenerConfig& listener, std::int64_t value, std::string_view where) {
  check_range(value, 1, 1 << 20, "backlog", where);
  listener.backlog = static_cast<int>(value);
}

void set_message_text(std::string& field, std::string_view escaped, std::string_view where) {
  std::string why;
  auto message = unescape(escaped, &why);
  if (!message) throw ConfigError(where, "bad message: " + why);
  if (message->size() > kMaxMessage) {
    throw ConfigError(where, fmt::format("message longer than {} bytes", kMaxMessage));
  }
  field = std::move(*message);
}

void set_message(ServiceOptions& options, std::string_view escaped, std::string_view where) {
  set_message_text(options.message, escaped, where);
}

void set_read_size(ServiceOptions& options, std::int64_t value, std::string_view where) {
  check_range(value, 1, 65536, "read size", where);
  options.read_size = static_cast<std::size_t>(value);
}

void set_send_buffer(ListenerConfig& listener, std::int64_t value, std::string_view where) {
  if (value != 0)
    check_range(value, 4096, 64 << 20, "send buffer (bytes; 0: the kernel's choice)", where);
  listener.send_buffer = static_cast<int>(value);
}

void set_timeout(Duration& field, std::string_view value, std::string_view where) {
  auto duration = parse_duration(value);
  if (!duration) {
    throw ConfigError(where, fmt::format("bad duration '{}' (write it like 500ms, 10s, 2m or 1h; "
                                         "between 1ms and a week)",
                                         printable(value)));
  }
  field = *duration;
}

void set_access_rule(AccessConfig& access, std::string_view rule, std::string_view where) {
  std::vector<AccessRule> rules;
  try {
    rules = AccessList::parse_rules(rule, where);
  } catch (const std::invalid_argument& e) {
    throw ConfigError("", e.what());  // it names `where` already
  }
  if (rules.size() != 1)
    throw ConfigError(where, fmt::format("expected one rule, got '{}'", printable(rule)));
  access.rules.push_back(rules.front());
}

void set_access_default(AccessConfig& access, std::string_view value, std::string_view where) {
  if (value == "allow") {
    access.default_action = Access::allow;
  } else if (value == "deny") {
    access.default_action = Access::deny;
  } else {
    throw ConfigError(where, fmt::format("expected allow or deny, not '{}'", printable(value)));
  }
}

void set_proxy_mode(ProxyConfig& proxy, std::string_view value, std::string_view where) {
  if (value == "off") {
    proxy.mode = ProxyMode::off;
  } else if (value == "required") {
    proxy.mode = ProxyMode::required;
  } else if (value == "optional") {
    proxy.mode = ProxyMode::optional;
  } else {
    throw ConfigError(
        where, fmt::format("expected off, required or optional, not '{}'", printable(value)));
  }
}

void add_proxy_trusted(ProxyConfig& proxy, std::string_view prefix, std::string_view where) {
  std::string_view why;
  auto parsed = IpPrefix::try_parse(prefix, &why);
  if (!parsed)
    throw ConfigError(where, fmt::format("bad address prefix '{}': {}", printable(prefix), why));
  proxy.trusted.push_back(*parsed);
}

void set_min_rate(ListenerConfig& listener, std::int64_t value, std::string_view where) {
  check_range(value, 0, 1'000'000'000, "minimum rate (bytes per second)", where);
  listener.min_rate = static_cast<double>(value);
}

void set_client_limit(std::size_t& field, std::int64_t value, std::int64_t max,
                      std::string_view what, std::string_view where) {
  check_range(value, 0, max, what, where);
  field = static_cast<std::size_t>(value);
}

void set_client_rate(double& field, double value, std::string_view what, std::string_view where) {
  if (!(value >= 0 && value <= 1e6)) {
    throw ConfigError(where, fmt::format("{} must be between 0 and 1000000 (got {})", what, value));
  }
  field = value;
}

void set_client_prefix(int& field, std::int64_t value, int max, std::string_view where) {
  check_range(value, 1, max, "client prefix length", where);
  field = static_cast<int>(value);
}

void set_threads(DaemonConfig& config, std::int64_t value, std::string_view where) {
  check_range(value, 0, 1024, "threads", where);
  config.threads = static_cast<unsigned>(value);
}

void set_backend(DaemonConfig& config, std::string_view value, std::string_view where) {
  try {
    config.backend = parse_backend_kind(value);
  } catch (const std::invalid_argument& e) {
    throw ConfigError(where, e.what());
  }
}

void set_max_connections(DaemonConfig& config, std::int64_t value, std::string_view where) {
  check_range(value, 1, 10'000'000, "max connections", where);
  config.max_connections = static_cast<std::size_t>(value);
}

void set_log_format(DaemonConfig& config, std::string_view value, std::string_view where) {
  if (value == "text") {
    config.log_format = log::Format::text;
  } else if (value == "json") {
    config.log_format = log::Format::json;
  } else {
    throw ConfigError(
        where, fmt::format("unknown log format '{}' (expected text or json)", printable(value)));
  }
}

void set_log_level(DaemonConfig& config, std::string_view value, std::string_view where) {
  try {
    config.log_level = log::parse_level(value);
  } catch (const std::invalid_argument& e) {
    throw ConfigError(where, e.what());
  }
}

void set_tls_handshake_rate(DaemonConfig& config, double value, std::string_view where) {
  if (!(value >= 0 && value <= 1e7)) {
    throw ConfigError(
        where, fmt::format("TLS handshake rate must be between 0 and 10000000 (got {})", value));
  }
  config.tls_handshake_rate = value;
}

void set_sandbox(DaemonConfig& config, std::string_view value, std::string_view where) {
  if (value == "on") {
    config.sandbox = true;
  } else if (value == "off") {
    config.sandbox = false;
  } else {
    throw ConfigError(where, fmt::format("expected on or off, not '{}'", printable(value)));
  }
}

void finish(DaemonConfig& config) {
  if (config.listeners.empty()) throw ConfigError("", "no listener configured");
  if (!config.group.empty() && config.user.empty()) {
    // Root with another group is still root: it could take any group back.
    throw ConfigError("",
                      "group needs user: salam changes group only as part of becoming "
                      "another user");
  }
  const auto& limits = config.client_limits;
  if (limits.rate > 0 && limits.burst < 1) {
    throw ConfigError("", "connection-burst must be at least 1 when connection-rate is set");
  }

  if ((limits.max_connections > 0 || limits.rate > 0) &&
      limits.max_clients < config.max_connections) {
    throw ConfigError("", fmt::format("max-clients ({}) must be at least max-connections ({}), so "
                                      "that every open connection's client can be tracked",
                                      limits.max_clients, config.max_connections));
  }
  std::unordered_map<std::string_view, const ListenerConfig*> by_address;
  by_address.reserve(config.listeners.size());
  std::optional<Identity> daemon_identity;
  for (auto& listener : config.listeners) {
    // Port 0 asks for a free port, so it never clashes.
    if (!listener.address.ends_with(":0")) {
      auto [first, added] = by_address.emplace(listener.address, &listener);
      if (!added) {
        throw ConfigError(listener.origin,
                          fmt::format("address {} is already used by the listener at {}",
                                      printable(listener.address), first->second->origin));
      }
    }
    if (listener.address == config.admin && !config.admin.ends_with(":0")) {
      throw ConfigError(listener.origin,
                        fmt::format("address {} is the admin endpoint's", printable(config.admin)));
    }
    finish_access(listener);
    finish_proxy(listener);
    finish_tls(listener.tls, listener.origin);
    if (listener.defer_accept && (listener.service != "greet" || listener.options.greet_first)) {
      // The kernel would hold every connection until the client sends,
      // which the client of a server-first service never does first.
      throw ConfigError(listener.origin,
                        listener.options.greet_first
                            ? std::string("defer-accept cannot go with greet-first: the server "
                                          "speaks first")
                            : fmt::format("defer-accept is for greet, where the client speaks "
                                          "first, not for {}",
                                          listener.service));
    }
    if (listener.service == "qotd") {
      listener.options.quotes = load_quotes(listener.options.quotes_file, listener.origin);
    }
    if (listener.service == "exec") {
      // Without exec-user, programs run as salam does once it has dropped.
      if (!daemon_identity && !config.user.empty())
        daemon_identity = look_up_identity(config.user, config.group);
      listener.options.exec = exec::make_program(listener.options.exec_settings, listener.origin,
                                                 daemon_identity ? &*daemon_identity : nullptr);
    } else if (!listener.options.exec_settings.command.empty()) {
      throw ConfigError(listener.origin, fmt::format("a program to run (exec) is for the exec "
                                                     "service, not for {}",
                                                     listener.service));
    }
  }
}

bool uses_exec(const DaemonConfig& config) noexcept {
  return std::any_of(config.listeners.begin(), config.listeners.end(),
                     [](const ListenerConfig& listener) { return listener.service == "exec"; });
}

void set_exec_limit(exec::ExecSettings& exec, exec::Limit limit, std::string_view value,
                    std::string_view where) {
  exec.limits[static_cast<std::size_t>(limit)] = exec::parse_limit(value, limit, where);
}

void set_max_children(exec::ExecSettings& exec, std::int64_t value, std::string_view where) {
  if (value < 1 || value > 1'000'000) {
    throw ConfigError(where, "exec-max-children must be between 1 and 1000000");
  }
  exec.max_children = static_cast<std::size_t>(value);
}

}  // namespace salam::daemon
