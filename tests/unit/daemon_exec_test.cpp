// The exec service's pieces that need no process: the request the spawner
// reads, resource limits, and the program's configuration.
#include <cstdio>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <unistd.h>

#include "cli.hpp"
#include "exec/program.hpp"
#include "exec/protocol.hpp"

namespace salam::daemon {
namespace {

using exec::Limit;
using exec::Request;

Request sample() {
  Request request;
  request.path = "/bin/echo";
  request.argv = {"echo", "-n", "", "two words"};
  request.env = {"PROTO=TCP", "EMPTY="};
  request.uid = 65534;
  request.gid = 65534;
  request.groups = {65534, 27};
  request.limits[static_cast<std::size_t>(Limit::files)] = 64;
  request.limits[static_cast<std::size_t>(Limit::address_space)] = 1ULL << 40;
  request.sandbox = true;
  return request;
}

TEST(ExecRequest, SurvivesTheTrip) {
  const Request request = sample();
  const auto decoded = exec::decode(exec::encode(request));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->path, request.path);
  EXPECT_EQ(decoded->argv, request.argv);
  EXPECT_EQ(decoded->env, request.env);
  EXPECT_EQ(decoded->uid, request.uid);
  EXPECT_EQ(decoded->gid, request.gid);
  EXPECT_EQ(decoded->groups, request.groups);
  EXPECT_EQ(decoded->limits, request.limits);
  EXPECT_TRUE(decoded->sandbox);
}

TEST(ExecRequest, UnsetFieldsStayUnset) {
  Request request;
  request.path = "/bin/true";
  request.argv = {"true"};
  const auto decoded = exec::decode(exec::encode(request));
  ASSERT_TRUE(decoded);
  EXPECT_FALSE(decoded->uid);
  EXPECT_FALSE(decoded->gid);
  EXPECT_TRUE(decoded->env.empty());
  for (const auto& limit : decoded->limits)
    EXPECT_FALSE(limit);
}

TEST(ExecRequest, EveryTruncationAndCorruptionIsRefused) {
  const auto bytes = exec::encode(sample());
  for (std::size_t size = 0; size < bytes.size(); ++size) {
    EXPECT_FALSE(exec::decode(std::span(bytes.data(), size))) << "accepted " << size << " bytes";
  }
  auto longer = bytes;
  longer.push_back(std::byte{'x'});
  EXPECT_FALSE(exec::decode(longer)) << "accepted trailing bytes";
  auto wrong_magic = bytes;
  wrong_magic[0] ^= std::byte{1};
  EXPECT_FALSE(exec::decode(wrong_magic));
  Request no_argv = sample();
  no_argv.argv.clear();
  EXPECT_FALSE(exec::decode(exec::encode(no_argv)));
}

TEST(ExecLimits, ParseCountsAndSizes) {
  EXPECT_EQ(exec::parse_limit("64", Limit::files, "x"), 64u);
  EXPECT_EQ(exec::parse_limit("512M", Limit::address_space, "x"), 512ULL << 20);
  EXPECT_EQ(exec::parse_limit("2G", Limit::address_space, "x"), 2ULL << 30);
  EXPECT_EQ(exec::parse_limit("8K", Limit::address_space, "x"), 8ULL << 10);
  for (const char* bad : {"", "0", "-1", "1.5", "12X", "K", "9999999999999", " 1"}) {
    EXPECT_THROW(exec::parse_limit(bad, Limit::address_space, "x"), ConfigError) << bad;
  }
  EXPECT_THROW(exec::parse_limit("8K", Limit::files, "x"), ConfigError);  // sizes are for AS only
}

class ExecConfig : public ::testing::Test {
 protected:
  DaemonConfig load(const std::string& text) {
    std::ofstream(path_) << text;
    Overrides overrides;
    overrides.config_file = path_;
    return load_configuration(overrides);
  }
  void TearDown() override { std::remove(path_.c_str()); }
  std::string path_ = "/tmp/salam-exec-test-" + std::to_string(::getpid()) + ".toml";
};

TEST_F(ExecConfig, ReadsEveryKey) {
  const DaemonConfig config = load(R"(
[[listen]]
address = "127.0.0.1:0"
service = "exec"
exec = ["sh", "-c", "exit 0"]
exec-env = ["A=1", "SALAM_EXEC_TEST_UNSET"]
exec-timeout = "2s"
exec-max-children = 7
exec-rlimit-as = "64M"
exec-rlimit-nproc = 10
exec-rlimit-nofile = 20
exec-rlimit-cpu = 3
exec-sandbox = true
)");
  ASSERT_EQ(config.listeners.size(), 1u);
  const auto& program = config.listeners[0].options.exec;
  ASSERT_TRUE(program);
  // Found in PATH; a variable salam does not have is not passed.
  EXPECT_TRUE(program->base.path.ends_with("/sh")) << program->base.path;
  EXPECT_EQ(program->base.argv, (std::vector<std::string>{"sh", "-c", "exit 0"}));
  EXPECT_EQ(program->base.env, std::vector<std::string>{"A=1"});
  EXPECT_EQ(program->timeout, Duration(std::chrono::seconds(2)));
  EXPECT_EQ(program->max_children, 7u);
  EXPECT_EQ(program->base.limits[static_cast<std::size_t>(Limit::address_space)], 64u << 20);
  EXPECT_EQ(program->base.limits[static_cast<std::size_t>(Limit::processes)], 10u);
  EXPECT_EQ(program->base.limits[static_cast<std::size_t>(Limit::files)], 20u);
  EXPECT_EQ(program->base.limits[static_cast<std::size_t>(Limit::cpu_seconds)], 3u);
  EXPECT_TRUE(program->base.sandbox);
}

TEST_F(ExecConfig, RefusesMistakes) {
  const std::pair<const char*, const char*> cases[] = {
      {"[[listen]]\naddress = \"127.0.0.1:0\"\nservice = \"exec\"\n", "needs a program"},
      {"[[listen]]\naddress = \"127.0.0.1:0\"\nexec = [\"/bin/true\"]\n",
       "is for the exec service"},
      {"[[listen]]\naddress = \"127.0.0.1:0\"\nservice = \"exec\"\nexec = [\"/nonexistent\"]\n",
       "not an executable file"},
      {"[[listen]]\naddress = \"127.0.0.1:0\"\nservice = \"exec\"\nexec = [\"/bin/true\"]\n"
       "exec-env = [\"=x\"]\n",
       "exec-env: bad entry"},
      {"[[listen]]\naddress = \"127.0.0.1:0\"\nservice = \"exec\"\nexec = [\"/bin/true\"]\n"
       "exec-group = \"no-such-group-here\"\n",
       "no group"},
      {"[[listen]]\naddress = \"127.0.0.1:0\"\nservice = \"exec\"\nexec = [\"/bin/true\"]\n"
       "exec-max-children = 0\n",
       "exec-max-children"},
      {"[[listen]]\naddress = \"127.0.0.1:0\"\nservice = \"exec\"\nexec = [\"/bin/true\"]\n"
       "exec-rlimit-cpu = \"lots\"\n",
       "exec-rlimit-cpu"},
      {"[[listen]]\naddress = \"127.0.0.1:0\"\nservice = \"exec\"\nexec = [\"/bin/tr\\u0000ue\"]\n",
       "NUL"},
  };
  for (const auto& [text, expected] : cases) {
    try {
      load(text);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace salam::daemon
