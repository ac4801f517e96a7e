#include "config_file.hpp"

#include <algorithm>
#include <optional>

#include <fmt/format.h>
#include <toml++/toml.h>

#include <salam/printable.hpp>

#include "input_file.hpp"

namespace salam::daemon {

namespace {

// Asked before the value is read: an unknown tls- key is reported as
// unknown, whatever its value's type.
bool is_tls_setting(std::string_view name) {
  return std::ranges::any_of(
      tls_settings(), [name](const TlsSettingInfo& setting) { return setting.name == name; });
}

std::optional<exec::Limit> exec_limit_named(std::string_view name) {
  for (std::size_t i = 0; i < exec::kLimits; ++i) {
    const auto limit = static_cast<exec::Limit>(i);
    if (exec::limit_key(limit) == name) return limit;
  }
  return std::nullopt;
}

class FileReader {
 public:
  // Messages name the file by a printable form of its path.
  explicit FileReader(const std::string& path) : path_(printable(path, 256)) {}

  std::string where(const toml::source_region& region) const {
    return fmt::format("{}:{}", path_, region.begin.line);
  }

  std::int64_t integer(const toml::node& node, std::string_view key) const {
    if (auto value = node.value_exact<std::int64_t>()) return *value;
    throw ConfigError(where(node.source()), fmt::format("'{}' must be an integer", key));
  }
  std::string_view string(const toml::node& node, std::string_view key) const {
    if (const auto* value = node.as_string()) return value->get();
    throw ConfigError(where(node.source()), fmt::format("'{}' must be a string", key));
  }
  double number(const toml::node& node, std::string_view key) const {
    if (auto value = node.value<double>()) return *value;  // an integer converts too
    throw ConfigError(where(node.source()), fmt::format("'{}' must be a number", key));
  }
  // Calls `each` with every string of an array, and where it is.
  template <typename Each>
  void strings(const toml::node& node, std::string_view key, Each&& each) const {
    const auto* list = node.as_array();
    if (list == nullptr) {
      throw ConfigError(where(node.source()), fmt::format("'{}' must be an array of strings", key));
    }
    for (const auto& item : *list)
      each(string(item, key), where(item.source()));
  }
  // A string, or an integer written as one.
  std::string scalar(const toml::node& node, std::string_view key) const {
    if (auto value = node.value_exact<std::int64_t>()) return std::to_string(*value);
    return std::string(string(node, key));
  }
  // A string or an array of strings.
  std::vector<std::string> string_list(const toml::node& node, std::string_view key) const {
    if (node.is_string()) return {std::string(string(node, key))};
    std::vector<std::string> items;
    strings(node, key,
            [&](std::string_view item, const std::string&) { items.emplace_back(item); });
    return items;
  }
  bool boolean(const toml::node& node, std::string_view key) const {
    if (auto value = node.value_exact<bool>()) return *value;
    throw ConfigError(where(node.source()), fmt::format("'{}' must be true or false", key));
  }
  [[noreturn]] void unknown(const toml::key& key, std::string_view section) const {
    throw ConfigError(where(key.source()),
                      fmt::format("unknown key '{}'{}", printable(key.str()), section));
  }

  void listener(const toml::table& table, DaemonConfig& config) const {
    ListenerConfig listener;
    listener.origin = where(table.source());
    bool has_address = false;
    for (auto&& [key, node] : table) {
      const std::string_view name = key.str();
      const std::string at = where(node.source());
      ServiceOptions& options = listener.options;
      if (name == "address") {
        set_address(listener, string(node, name), at);
        has_address = true;
      } else if (name == "name") {
        set_socket_name(listener, string(node, name), at);
      } else if (name == "service") {
        set_service(listener, string(node, name), at);
      } else if (name == "backlog") {
        set_backlog(listener, integer(node, name), at);
      } else if (name == "reuse-port") {
        listener.reuse_port = boolean(node, name);
      } else if (name == "defer-accept") {
        listener.defer_accept = boolean(node, name);

      } else if (name == "message") {
        set_message(options, string(node, name), at);
      } else if (name == "read-size") {
        set_read_size(options, integer(node, name), at);
      } else if (name == "read-timeout") {
        set_timeout(options.read_timeout, string(node, name), at);
      } else if (name == "idle-timeout") {
        set_timeout(options.idle_timeout, string(node, name), at);
      } else if (name == "write-timeout") {
        set_timeout(options.write_timeout, string(node, name), at);
      } else if (name == "send-buffer") {
        set_send_buffer(listener, integer(node, name), at);
      } else if (name == "greet-first") {
        options.greet_first = boolean(node, name);
      } else if (name == "quotes-file") {
        options.quotes_file = std::string(string(node, name));
      } else if (name == "access") {
        strings(node, name, [&](std::string_view rule, const std::string& rule_at) {
          set_access_rule(listener.access, rule, rule_at);
        });
      } else if (name == "access-file") {
        listener.access.rules_file = std::string(string(node, name));
      } else if (name == "access-default") {
        set_access_default(listener.access, string(node, name), at);
      } else if (name == "proxy-protocol") {
        set_proxy_mode(listener.proxy, string(node, name), at);
      } else if (name == "proxy-trusted") {
        strings(node, name, [&](std::string_view prefix, const std::string& prefix_at) {
          add_proxy_trusted(listener.proxy, prefix, prefix_at);
        });
      } else if (name == "proxy-timeout") {
        set_timeout(listener.proxy.timeout, string(node, name), at);
      } else if (name == "max-lifetime") {
        set_timeout(listener.max_lifetime, string(node, name), at);
      } else if (name == "min-rate") {
        set_min_rate(listener, integer(node, name), at);
      } else if (name == "min-rate-grace") {
        set_timeout(listener.min_rate_grace, string(node, name), at);
      } else if (name == "exec") {
        options.exec_settings.command = string_list(node, name);
      } else if (name == "exec-env") {
        options.exec_settings.env = string_list(node, name);
      } else if (name == "exec-user") {
        options.exec_settings.user = std::string(string(node, name));
      } else if (name == "exec-group") {
        options.exec_settings.group = std::string(string(node, name));
      } else if (name == "exec-timeout") {
        set_timeout(options.exec_settings.timeout, string(node, name), at);
      } else if (name == "exec-max-children") {
        set_max_children(options.exec_settings, integer(node, name), at);
      } else if (name == "exec-sandbox") {
        options.exec_settings.sandbox = boolean(node, name);
      } else if (const auto limit = exec_limit_named(name)) {
        set_exec_limit(options.exec_settings, *limit, scalar(node, name), at);
      } else if (name == "tls-cert") {
        listener.tls.cert_files = string_list(node, name);
      } else if (name == "tls-key") {
        listener.tls.key_files = string_list(node, name);
      } else if (name == "tls-alpn" && node.is_array()) {
        listener.tls.alpn = string_list(node, name);
      } else if (is_tls_setting(name) &&
                 set_tls_setting(listener.tls, name, scalar(node, name), at)) {
      } else {
        unknown(key, " in [[listen]]");
      }
    }
    if (!has_address) throw ConfigError(listener.origin, "[[listen]] needs an 'address'");
    config.listeners.push_back(std::move(listener));
  }

  void root(const toml::table& table, DaemonConfig& config) const {
    bool has_listeners = false;
    for (auto&& [key, node] : table) {
      const std::string_view name = key.str();
      const std::string at = where(node.source());
      if (name == "threads") {
        set_threads(config, integer(node, name), at);
      } else if (name == "backend") {
        set_backend(config, string(node, name), at);
      } else if (name == "max-connections") {
        set_max_connections(config, integer(node, name), at);
      } else if (name == "accept-grace") {
        set_timeout(config.accept_grace, string(node, name), at);
      } else if (name == "drain-timeout") {
        set_timeout(config.drain_timeout, string(node, name), at);
      } else if (name == "upgrade-timeout") {
        set_timeout(config.upgrade_timeout, string(node, name), at);
      } else if (name == "log-format") {
        set_log_format(config, string(node, name), at);
      } else if (name == "log-level") {
        set_log_level(config, string(node, name), at);
      } else if (name == "log-connections") {
        config.log_connections = boolean(node, name);
      } else if (name == "access-log") {
        config.access_log = std::string(string(node, name));
      } else if (name == "pid-file") {
        config.pid_file = std::string(string(node, name));
      } else if (name == "admin") {
        set_admin(config, string(node, name), at);
      } else if (name == "max-connections-per-client") {
        set_client_limit(config.client_limits.max_connections, integer(node, name), 1'000'000,
                         "connections per client", at);
      } else if (name == "connection-rate") {
        set_client_rate(config.client_limits.rate, number(node, name), "connection rate", at);
      } else if (name == "connection-burst") {
        set_client_rate(config.client_limits.burst, number(node, name), "connection burst", at);
      } else if (name == "client-prefix-v4") {
        set_client_prefix(config.client_limits.ipv4_prefix, integer(node, name), 32, at);
      } else if (name == "client-prefix-v6") {
        set_client_prefix(config.client_limits.ipv6_prefix, integer(node, name), 128, at);
      } else if (name == "max-clients") {
        set_client_limit(config.client_limits.max_clients, integer(node, name), 100'000'000,
                         "max clients", at);
      } else if (name == "limit-message") {
        set_message_text(config.limit_message, string(node, name), at);
      } else if (name == "tls-handshake-rate") {
        set_tls_handshake_rate(config, number(node, name), at);
      } else if (name == "user") {
        config.user = std::string(string(node, name));
      } else if (name == "group") {
        config.group = std::string(string(node, name));
      } else if (name == "sandbox") {
        set_sandbox(config, string(node, name), at);
      } else if (name == "listen") {
        const auto* list = node.as_array();
        if (list == nullptr || !list->is_array_of_tables()) {
          throw ConfigError(at, "'listen' must be tables: write each listener as [[listen]]");
        }
        if (!has_listeners) config.listeners.clear();  // the file's listeners replace the default
        has_listeners = true;
        for (const auto& item : *list)
          listener(*item.as_table(), config);
      } else {
        unknown(key, "");
      }
    }
  }

 private:
  std::string path_;
};

}  // namespace

void apply_config_file(DaemonConfig& config, const std::string& path) {
  const std::string text = read_input_file_or_throw(path, kMaxConfigFile, "configuration", "");
  apply_config_text(config, text, path);
}

void apply_config_text(DaemonConfig& config, std::string_view text, const std::string& name) {
  toml::table table;
  try {
    table = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    throw ConfigError(fmt::format("{}:{}", printable(name, 256), e.source().begin.line),
                      e.description());
  }
  FileReader(name).root(table, config);
}

}  // namespace salam::daemon
