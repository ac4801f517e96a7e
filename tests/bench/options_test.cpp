// salam-bench's command line and report formats.
#include "options.hpp"

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "report.hpp"

namespace salam::bench {
namespace {

using namespace std::chrono_literals;

Options parse(std::vector<std::string> arguments) {
  arguments.insert(arguments.begin(), "salam-bench");
  std::vector<char*> argv;
  for (auto& argument : arguments)
    argv.push_back(argument.data());
  return parse_options(static_cast<int>(argv.size()), argv.data());
}

TEST(ParseDuration, AcceptsCommonUnits) {
  EXPECT_EQ(parse_duration("10s"), 10s);
  EXPECT_EQ(parse_duration("10"), 10s);
  EXPECT_EQ(parse_duration("500ms"), 500ms);
  EXPECT_EQ(parse_duration("250us"), 250us);
  EXPECT_EQ(parse_duration("1.5s"), 1500ms);
  EXPECT_EQ(parse_duration("2m"), 120s);
  EXPECT_EQ(parse_duration("0s"), 0s);
}

TEST(ParseDuration, RejectsNonsense) {
  for (const char* text : {"", "s", "ten", "10 s", "10h", "-1s", "1e30s", "5sec"}) {
    EXPECT_THROW(parse_duration(text), std::invalid_argument) << text;
  }
}

TEST(ParseWorkload, KnowsEveryWorkload) {
  for (auto workload : {Workload::greet, Workload::banner, Workload::echo, Workload::discard,
                        Workload::hold, Workload::burst}) {
    EXPECT_EQ(parse_workload(to_string(workload)), workload);
  }
  EXPECT_THROW(parse_workload("http"), std::invalid_argument);
}

TEST(Options, DefaultsAreTheArticlesProtocol) {
  const Options options = parse({});
  EXPECT_EQ(options.target.to_string(), "127.0.0.1:8888");
  EXPECT_EQ(options.workload, Workload::greet);
  EXPECT_EQ(options.expect, "Hello, client!");
  EXPECT_EQ(options.duration, 10s);
  EXPECT_EQ(options.requests, 0u);
  EXPECT_EQ(options.threads, 1u);
  EXPECT_FALSE(options.json);
}

TEST(Options, ParsesEveryOption) {
  const Options options = parse({"--target",
                                 "[::1]:9000",
                                 "--workload",
                                 "echo",
                                 "--concurrency",
                                 "8",
                                 "--requests",
                                 "1000",
                                 "--size",
                                 "512",
                                 "--threads",
                                 "2",
                                 "--timeout",
                                 "250ms",
                                 "--warmup",
                                 "1s",
                                 "--server-pid",
                                 "1",
                                 "--json",
                                 "--backend",
                                 "epoll",
                                 "--message",
                                 "hi",
                                 "--expect",
                                 "yo",
                                 "--half-close"});
  EXPECT_EQ(options.target.to_string(), "[::1]:9000");
  EXPECT_EQ(options.workload, Workload::echo);
  EXPECT_EQ(options.concurrency, 8u);
  EXPECT_EQ(options.requests, 1000u);
  EXPECT_EQ(options.payload_size(), 512u);
  EXPECT_EQ(options.threads, 2u);
  EXPECT_EQ(options.timeout, 250ms);
  EXPECT_EQ(options.warmup, 1s);
  EXPECT_EQ(options.server_pid, 1);
  EXPECT_TRUE(options.json);
  EXPECT_EQ(options.backend, BackendKind::epoll);
  EXPECT_EQ(options.message, "hi");
  EXPECT_EQ(options.expect, "yo");
  EXPECT_TRUE(options.half_close);
}

TEST(Options, PayloadSizeDefaultsByWorkload) {
  EXPECT_EQ(parse({"--workload", "echo"}).payload_size(), 64u);
  EXPECT_EQ(parse({"--workload", "discard"}).payload_size(), 65536u);
}

TEST(OptionsDeathTest, BadInputExitsWithStatusTwo) {
  EXPECT_EXIT(parse({"--target", "localhost:80"}), ::testing::ExitedWithCode(2), "--target");
  EXPECT_EXIT(parse({"--workload", "http"}), ::testing::ExitedWithCode(2), "workload");
  EXPECT_EXIT(parse({"--duration", "5x"}), ::testing::ExitedWithCode(2), "unknown unit");
  EXPECT_EXIT(parse({"--duration", "1s", "--requests", "5"}), ::testing::ExitedWithCode(2),
              "excludes");
  EXPECT_EXIT(parse({"--concurrency", "0"}), ::testing::ExitedWithCode(2), "concurrency");
  EXPECT_EXIT(parse({"--target", "[::1]:80", "--source-addresses", "4"}),
              ::testing::ExitedWithCode(2), "IPv4");
}

TEST(Report, JsonCarriesTheCountsAndErrorKinds) {
  Options options = parse({"--workload", "greet"});
  RunResult run;
  run.stats.record_success(std::chrono::microseconds(120));
  run.stats.record_error(ErrorKind::wrong_reply);
  run.elapsed = 1s;
  run.backend = BackendKind::epoll;
  const std::string json = format_json(options, run, summarize(run.stats, run.elapsed, 0.001));
  EXPECT_NE(json.find("\"operations\":2,\"successes\":1"), std::string::npos) << json;
  EXPECT_NE(json.find("\"wrong_reply\":1"), std::string::npos) << json;
  EXPECT_NE(json.find("\"backend\":\"epoll\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"server_cpu_us_per_op\":500"), std::string::npos) << json;
  EXPECT_EQ(json.back(), '\n');
  const std::string text = format_text(options, run, summarize(run.stats, run.elapsed));
  EXPECT_NE(text.find("wrong_reply 1"), std::string::npos) << text;
  EXPECT_EQ(text.find("server CPU"), std::string::npos) << "no --server-pid, no CPU line";
}

TEST(Report, HoldReportsServerMemoryPerConnection) {
  Options options = parse({"--workload", "hold", "--concurrency", "100"});
  RunResult run;
  for (int i = 0; i < 100; ++i)
    run.stats.record_success(std::chrono::microseconds(50));
  run.elapsed = 1s;
  run.most_held = 100;
  run.server_rss_before_kib = 1000;
  run.server_rss_held_kib = 1100;
  const std::string json = format_json(options, run, summarize(run.stats, run.elapsed));
  EXPECT_NE(json.find("\"held\":100"), std::string::npos) << json;
  EXPECT_NE(json.find("\"server_rss_per_connection_bytes\":1024"), std::string::npos) << json;
}

}  // namespace
}  // namespace salam::bench
