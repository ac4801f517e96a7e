// The daemon's configuration: durations, escapes, the TOML file, and the
// order defaults → file → flags.
#include <cstdio>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <unistd.h>

#include "cli.hpp"
#include "config_file.hpp"
#include "duration.hpp"
#include "escapes.hpp"
#include "sandbox/privileges.hpp"

namespace salam::daemon {
namespace {

using namespace std::chrono_literals;

TEST(Duration, ParsesEveryUnit) {
  EXPECT_EQ(parse_duration("500ms"), Duration(500ms));
  EXPECT_EQ(parse_duration("10s"), Duration(10s));
  EXPECT_EQ(parse_duration("2m"), Duration(2min));
  EXPECT_EQ(parse_duration("1h"), Duration(1h));
  EXPECT_EQ(parse_duration("1.5s"), Duration(1500ms));
}

TEST(Duration, RejectsWhatIsNotADuration) {
  for (const char* text : {"", "10", "s", "10x", "-1s", "+1s", "1 s", "0s", "0.5ms", "8d", "169h",
                           "1e3s", "..s", "nans", "10sec"}) {
    EXPECT_FALSE(parse_duration(text)) << text;
  }
}

TEST(Duration, FormatsWithTheLargestExactUnit) {
  EXPECT_EQ(format_duration(250ms), "250ms");
  EXPECT_EQ(format_duration(10s), "10s");
  EXPECT_EQ(format_duration(120s), "2m");
  EXPECT_EQ(format_duration(1h), "1h");
  EXPECT_EQ(format_duration(1500ms), "1500ms");
}

TEST(Escapes, TurnsEscapesIntoBytes) {
  EXPECT_EQ(unescape("Hello, client!"), "Hello, client!");
  EXPECT_EQ(unescape("a\\r\\nb"), "a\r\nb");
  EXPECT_EQ(unescape("\\t\\\\\\x41\\x7e"), "\t\\A~");
  EXPECT_EQ(unescape("\\0"), std::string(1, '\0'));
}

TEST(Escapes, ExplainsMalformedEscapes) {
  std::string why;
  EXPECT_FALSE(unescape("end\\", &why));
  EXPECT_NE(why.find("lone backslash"), std::string::npos);
  EXPECT_FALSE(unescape("\\q", &why));
  EXPECT_NE(why.find("unknown escape \\q"), std::string::npos);
  EXPECT_FALSE(unescape("\\x4", &why));
  EXPECT_NE(why.find("two hexadecimal digits"), std::string::npos);
  EXPECT_FALSE(unescape("\\xzz", &why));
}

class ConfigFile : public ::testing::Test {
 protected:
  std::string write(const std::string& text) {
    std::ofstream(path_) << text;
    return path_;
  }
  void TearDown() override { std::remove(path_.c_str()); }
  // Each file is refused, with a message that contains its expected text.
  template <std::size_t N>
  void expect_rejected(const std::pair<const char*, const char*> (&cases)[N]) {
    for (const auto& [text, expected] : cases) {
      Overrides overrides;
      overrides.config_file = write(text);
      try {
        load_configuration(overrides);
        ADD_FAILURE() << "accepted: " << text;
      } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
      }
    }
  }
  std::string path_ = "/tmp/salam-config-test-" + std::to_string(::getpid()) + ".toml";
};

TEST_F(ConfigFile, ReadsEveryKey) {
  DaemonConfig config;
  apply_config_file(config, write(R"(
threads = 3
backend = "epoll"
max-connections = 500
drain-timeout = "2s"
accept-grace = "1500ms"
log-format = "json"
log-level = "warning"
log-connections = false
pid-file = "/run/salam.pid"
admin = "127.0.0.1:9100"
upgrade-timeout = "5s"

[[listen]]
address = "[::0]:7"
name = "echo-socket"
service = "echo"
idle-timeout = "30s"
backlog = 128
reuse-port = true

[[listen]]
address = "127.0.0.1:8888"
message = "hi\\r\\n"
read-size = 10
read-timeout = "250ms"
greet-first = true
)"));
  EXPECT_EQ(config.threads, 3u);
  EXPECT_EQ(config.backend, BackendKind::epoll);
  EXPECT_EQ(config.max_connections, 500u);
  EXPECT_EQ(config.drain_timeout, Duration(2s));
  EXPECT_EQ(config.accept_grace, Duration(1500ms));
  EXPECT_EQ(config.log_format, log::Format::json);
  EXPECT_EQ(config.log_level, log::Level::warning);
  EXPECT_FALSE(config.log_connections);
  EXPECT_EQ(config.pid_file, "/run/salam.pid");
  EXPECT_EQ(config.admin, "127.0.0.1:9100");
  EXPECT_EQ(config.upgrade_timeout, Duration(5s));
  EXPECT_EQ(config.listeners[0].socket_name, "echo-socket");
  ASSERT_EQ(config.listeners.size(), 2u);
  EXPECT_EQ(config.listeners[0].address, "[::]:7") << "addresses are kept in one spelling";
  EXPECT_EQ(config.listeners[0].service, "echo");
  EXPECT_EQ(config.listeners[0].options.idle_timeout, Duration(30s));
  EXPECT_EQ(config.listeners[0].backlog, 128);
  EXPECT_TRUE(config.listeners[0].reuse_port);
  EXPECT_EQ(config.listeners[0].origin, path_ + ":14");
  EXPECT_EQ(config.listeners[1].options.message, "hi\r\n");
  EXPECT_EQ(config.listeners[1].options.read_size, 10u);
  EXPECT_EQ(config.listeners[1].options.read_timeout, Duration(250ms));
  EXPECT_TRUE(config.listeners[1].options.greet_first);
}

TEST_F(ConfigFile, ReadsThePolicyKeys) {
  Overrides overrides;
  overrides.config_file = write(R"(
max-connections = 100
max-connections-per-client = 3
connection-rate = 2.5
connection-burst = 4
client-prefix-v4 = 24
client-prefix-v6 = 48
max-clients = 1000
limit-message = "busy\r\n"
access-log = "/tmp/access.log"

[[listen]]
address = "127.0.0.1:1"
access = ["allow 10.0.0.0/8", "deny 0.0.0.0/0"]
access-default = "deny"
proxy-protocol = "required"
proxy-trusted = ["127.0.0.1", "::1"]
proxy-timeout = "300ms"
max-lifetime = "1h"
min-rate = 100
min-rate-grace = "5s"
)");
  DaemonConfig config = load_configuration(overrides);
  EXPECT_EQ(config.client_limits.max_connections, 3u);
  EXPECT_EQ(config.client_limits.rate, 2.5);
  EXPECT_EQ(config.client_limits.burst, 4);
  EXPECT_EQ(config.client_limits.ipv4_prefix, 24);
  EXPECT_EQ(config.client_limits.ipv6_prefix, 48);
  EXPECT_EQ(config.client_limits.max_clients, 1000u);
  EXPECT_EQ(config.limit_message, "busy\r\n");
  EXPECT_EQ(config.access_log, "/tmp/access.log");
  const ListenerConfig& listener = config.listeners.at(0);
  ASSERT_EQ(listener.access.rules.size(), 2u);
  EXPECT_EQ(listener.access.default_action, Access::deny);
  ASSERT_TRUE(listener.access.list);
  EXPECT_EQ(listener.access.list->check(SocketAddress::parse("10.1.2.3:1")), Access::allow);
  EXPECT_EQ(listener.access.list->check(SocketAddress::parse("192.0.2.1:1")), Access::deny);
  EXPECT_EQ(listener.proxy.mode, ProxyMode::required);
  ASSERT_TRUE(listener.proxy.trusted_list);
  EXPECT_EQ(listener.proxy.trusted_list->check(SocketAddress::parse("[::1]:1")), Access::allow);
  EXPECT_EQ(listener.proxy.trusted_list->check(SocketAddress::parse("127.0.0.2:1")), Access::deny);
  EXPECT_EQ(listener.proxy.timeout, Duration(300ms));
  EXPECT_EQ(listener.max_lifetime, Duration(1h));
  EXPECT_EQ(listener.min_rate, 100);
  EXPECT_EQ(listener.min_rate_grace, Duration(5s));
}

TEST_F(ConfigFile, PolicyMistakesAreCaught) {
  const std::pair<const char*, const char*> cases[] = {
      {"[[listen]]\naddress = \"127.0.0.1:1\"\nproxy-protocol = \"required\"\n",
       "needs proxy-trusted"},
      {"[[listen]]\naddress = \"127.0.0.1:1\"\naccess = [\"permit 10.0.0.0/8\"]\n", ":3:"},
      {"[[listen]]\naddress = \"127.0.0.1:1\"\nproxy-trusted = [\"10.0.0.1/8\"]\n", ":3:"},
      {"[[listen]]\naddress = \"127.0.0.1:1\"\nproxy-protocol = \"maybe\"\n",
       "off, required or optional"},
      {"max-connections-per-client = 1\nmax-clients = 10\n", "must be at least max-connections"},
      {"connection-rate = -1\n", "connection rate"},
      {"client-prefix-v4 = 33\n", "client prefix length"},
  };
  expect_rejected(cases);
}

TEST_F(ConfigFile, OperationsMistakesAreCaught) {
  const std::pair<const char*, const char*> cases[] = {
      {"admin = \"nowhere\"\n", "bad address 'nowhere'"},
      {"admin = \"127.0.0.1:9100\"\n[[listen]]\naddress = \"127.0.0.1:9100\"\n",
       "is the admin endpoint's"},
      {"upgrade-timeout = \"soon\"\n", ":1:"},
      {"[[listen]]\naddress = \"127.0.0.1:1\"\nname = \"a:b\"\n", "bad socket name"},
      {"[[listen]]\naddress = \"127.0.0.1:1\"\nname = \"\"\n", "bad socket name"},
  };
  expect_rejected(cases);
}

TEST_F(ConfigFile, ReadsTheTlsKeys) {
  // The keys only: the files they name are read by finish(), which the
  // integration tests exercise with real certificates.
  DaemonConfig config;
  apply_config_file(config, write(R"(
tls-handshake-rate = 200

[[listen]]
address = "127.0.0.1:443"
tls-cert = ["a.pem", "b.pem"]
tls-key = ["a.key", "b.key"]
tls-min-version = "1.3"
tls-alpn = ["h2", "http/1.1"]
tls-sni = "strict"
tls-handshake-timeout = "3s"
tls-client-verify = "optional"
tls-client-ca = "ca.pem"
tls-crl = "crl.pem"
tls-verify-depth = 2
tls-ciphersuites = "TLS_AES_128_GCM_SHA256"

[[listen]]
address = "127.0.0.1:444"
tls-cert = "c.pem"
tls-alpn = "h2, http/1.1"
)"));
  EXPECT_EQ(config.tls_handshake_rate, 200);
  const TlsConfig& first = config.listeners.at(0).tls;
  EXPECT_EQ(first.cert_files, (std::vector<std::string>{"a.pem", "b.pem"}));
  EXPECT_EQ(first.key_files, (std::vector<std::string>{"a.key", "b.key"}));
  EXPECT_EQ(first.min_version, tls::Version::tls1_3);
  EXPECT_EQ(first.alpn, (std::vector<std::string>{"h2", "http/1.1"}));
  EXPECT_EQ(first.sni, tls::SniMode::strict);
  EXPECT_EQ(first.handshake_timeout, Duration(3s));
  EXPECT_EQ(first.client_verify, tls::ClientVerify::optional);
  EXPECT_EQ(first.client_ca_file, "ca.pem");
  EXPECT_EQ(first.crl_file, "crl.pem");
  EXPECT_EQ(first.verify_depth, 2);
  EXPECT_EQ(first.ciphersuites, "TLS_AES_128_GCM_SHA256");
  const TlsConfig& second = config.listeners.at(1).tls;
  EXPECT_EQ(second.cert_files, (std::vector<std::string>{"c.pem"}));
  EXPECT_EQ(second.alpn, (std::vector<std::string>{"h2", "http/1.1"}));
}

TEST_F(ConfigFile, TlsMistakesAreCaught) {
  const std::pair<const char*, const char*> cases[] = {
      {"[[listen]]\naddress = \"127.0.0.1:1\"\ntls-min-version = \"1.0\"\n", "1.2 or 1.3"},
      {"[[listen]]\naddress = \"127.0.0.1:1\"\ntls-sni = \"loose\"\n", "default or strict"},
      {"[[listen]]\naddress = \"127.0.0.1:1\"\ntls-verify-depth = 40\n", "between 1 and 16"},
      {"[[listen]]\naddress = \"127.0.0.1:1\"\ntls-client-verify = \"maybe\"\n",
       "none, optional or required"},
      {"[[listen]]\naddress = \"127.0.0.1:1\"\ntls-certificate = \"a.pem\"\n",
       "unknown key 'tls-certificate'"},
      // Unknown whatever the value: not "must be a string".
      {"[[listen]]\naddress = \"127.0.0.1:1\"\ntls-certificate = true\n",
       "unknown key 'tls-certificate'"},
      {"[[listen]]\naddress = \"127.0.0.1:1\"\ntls-key = \"a.key\"\n", "without a certificate"},
      {"tls-handshake-rate = -3\n", "TLS handshake rate"},
  };
  expect_rejected(cases);
}

TEST_F(ConfigFile, ConfinementKeysAndTheirFlags) {
  Overrides overrides;
  overrides.config_file = write("user = \"nobody\"\ngroup = \"nogroup\"\nsandbox = \"off\"\n");
  DaemonConfig config = load_configuration(overrides);
  EXPECT_EQ(config.user, "nobody");
  EXPECT_EQ(config.group, "nogroup");
  EXPECT_FALSE(config.sandbox);
  overrides.user = "daemon";
  overrides.sandbox = "on";
  config = load_configuration(overrides);
  EXPECT_EQ(config.user, "daemon");
  EXPECT_TRUE(config.sandbox);
  EXPECT_TRUE(load_configuration(Overrides{}).sandbox) << "on by default";
  const std::pair<const char*, const char*> cases[] = {
      {"sandbox = \"maybe\"\n", "expected on or off, not 'maybe'"},
      {"sandbox = true\n", "'sandbox' must be a string"},
      {"group = \"nogroup\"\n", "group needs user"},
  };
  expect_rejected(cases);
}

TEST(Identity, LooksTheUserAndGroupUp) {
  EXPECT_FALSE(look_up_identity("", ""));
  const auto nobody = look_up_identity("nobody", "");
  ASSERT_TRUE(nobody);
  EXPECT_EQ(nobody->uid, 65534u);
  EXPECT_EQ(nobody->gid, 65534u);
  EXPECT_FALSE(nobody->groups.empty()) << "its own group at least";
  EXPECT_EQ(look_up_identity("nobody", "root")->gid, 0u);
  EXPECT_THROW(look_up_identity("no-such-user", ""), ConfigError);
  EXPECT_THROW(look_up_identity("nobody", "no-such-group"), ConfigError);
}

TEST_F(ConfigFile, ErrorsNameTheFileAndLine) {
  DaemonConfig config;
  try {
    apply_config_file(
        config, write("threads = 1\n\n[[listen]]\naddress = \"127.0.0.1:1\"\nbacklog = -5\n"));
    FAIL() << "accepted a negative backlog";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), path_ + ":5: backlog must be between 1 and 1048576 (got -5)");
  }
}

TEST_F(ConfigFile, FlagsOverrideTheFile) {
  Overrides overrides;
  overrides.config_file = write(
      "threads = 3\n[[listen]]\naddress = \"127.0.0.1:1\"\nmessage = \"from the file\"\n"
      "[[listen]]\naddress = \"127.0.0.1:2\"\nservice = \"echo\"\n");
  overrides.threads = 1;
  overrides.read_timeout = "3s";
  DaemonConfig config = load_configuration(overrides);
  EXPECT_EQ(config.threads, 1u);
  ASSERT_EQ(config.listeners.size(), 2u) << "without --listen, the file's listeners stay";
  EXPECT_EQ(config.listeners[0].options.message, "from the file");
  for (const auto& listener : config.listeners)
    EXPECT_EQ(listener.options.read_timeout, Duration(3s));

  overrides.listen = {"127.0.0.1:9"};
  overrides.service = "discard";
  config = load_configuration(overrides);
  ASSERT_EQ(config.listeners.size(), 1u) << "--listen replaces the file's listeners";
  EXPECT_EQ(config.listeners[0].address, "127.0.0.1:9");
  EXPECT_EQ(config.listeners[0].service, "discard");
}

TEST(Defaults, AreTheTutorialServer) {
  DaemonConfig config = load_configuration(Overrides{});
  ASSERT_EQ(config.listeners.size(), 1u);
  const auto& listener = config.listeners[0];
  EXPECT_EQ(listener.address, "127.0.0.1:8888");
  EXPECT_EQ(listener.service, "greet");
  EXPECT_EQ(listener.options.message, "Hello, client!");
  EXPECT_EQ(listener.options.read_size, 1024u);
  EXPECT_EQ(listener.backlog, 4096);
  EXPECT_EQ(listener.options.read_timeout, Duration(10s));
}

}  // namespace
}  // namespace salam::daemon
