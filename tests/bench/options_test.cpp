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
                        Workload::hold, Workload::burst, Workload::handshake}) {
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
  EXPECT_FALSE(options.tls);
  EXPECT_FALSE(options.tls_resume);
  EXPECT_FALSE(options.tls_version);
  EXPECT_EQ(options.upstream_pid, 0);
}

TEST(Options, ParsesTheTlsOptions) {
  const Options options =
      parse({"--tls", "--workload", "handshake", "--tls-server-name", "localhost", "--tls-ca",
             "/dev/null", "--tls-resume", "--tls-version", "1.3", "--upstream-pid", "7"});
  EXPECT_TRUE(options.tls);
  EXPECT_EQ(options.workload, Workload::handshake);
  EXPECT_EQ(options.tls_server_name, "localhost");
  EXPECT_EQ(options.tls_ca_file, "/dev/null");
  EXPECT_TRUE(options.tls_resume);
  EXPECT_EQ(options.tls_version, tls::Version::tls1_3);
  EXPECT_EQ(options.upstream_pid, 7);
  EXPECT_EQ(parse({"--tls", "--tls-version", "1.2"}).tls_version, tls::Version::tls1_2);
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

TEST(OptionsDeathTest, TlsOptionsThatCannotWork) {
  EXPECT_EXIT(parse({"--workload", "handshake"}), ::testing::ExitedWithCode(2), "needs --tls");
  EXPECT_EXIT(parse({"--tls-resume"}), ::testing::ExitedWithCode(2), "--tls");
  EXPECT_EXIT(parse({"--tls-server-name", "x"}), ::testing::ExitedWithCode(2), "--tls");
  EXPECT_EXIT(parse({"--tls", "--tls-version", "1.1"}), ::testing::ExitedWithCode(2),
              "tls-version");
  EXPECT_EXIT(parse({"--tls", "--tls-ca", "/no/such/file"}), ::testing::ExitedWithCode(2),
              "tls-ca");
  // shutdown_write() cannot send close_notify: a half-closed TLS connection
  // would be no TLS connection at all.
  EXPECT_EXIT(parse({"--tls", "--half-close"}), ::testing::ExitedWithCode(2), "half-close");
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

TEST(Report, TlsCarriesHandshakesAndResumption) {
  Options options =
      parse({"--tls", "--tls-resume", "--workload", "handshake", "--concurrency", "2"});
  RunResult run;
  run.stats.note_negotiated("TLSv1.3", "TLS_AES_128_GCM_SHA256");
  for (int i = 0; i < 10; ++i) {
    run.stats.record_success(std::chrono::microseconds(500));
    // Each of the 2 workers' first handshake has nothing to offer; then
    // every session offered is resumed.
    const bool first = i < 2;
    run.stats.record_handshake(!first, !first, std::chrono::microseconds(first ? 400 : 200));
  }
  run.elapsed = 1s;
  std::string json = format_json(options, run, summarize(run.stats, run.elapsed));
  EXPECT_NE(json.find("\"workload\":\"handshake\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"version\":\"TLSv1.3\",\"cipher\":\"TLS_AES_128_GCM_SHA256\""),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"handshakes\":10,\"full\":2,\"resumed\":8,\"resume_offered\":8,"
                      "\"resume_refused\":0,\"no_session_offered\":2,\"resumption_missed\":0"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"tls\":0"), std::string::npos) << "errors carry the tls kind: " << json;
  std::string text = format_text(options, run, summarize(run.stats, run.elapsed));
  EXPECT_NE(text.find("handshakes   10: full 2, resumed 8 (8 of 8 sessions offered"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("FAILED"), std::string::npos) << text;

  // A server that refuses every session: the report must say so.
  run.stats.record_handshake(false, true, std::chrono::microseconds(400));
  run.stats.record_success(std::chrono::microseconds(500));
  json = format_json(options, run, summarize(run.stats, run.elapsed));
  EXPECT_NE(json.find("\"resume_refused\":1"), std::string::npos) << json;
  EXPECT_NE(json.find("\"resumption_missed\":1"), std::string::npos) << json;
  text = format_text(options, run, summarize(run.stats, run.elapsed));
  EXPECT_NE(text.find("resumption   FAILED for 1 handshakes: 1 offered sessions refused"),
            std::string::npos)
      << text;
}

TEST(Report, PlainRunsSayNothingOfTls) {
  Options options = parse({});
  RunResult run;
  run.stats.record_success(std::chrono::microseconds(100));
  run.elapsed = 1s;
  const Summary summary = summarize(run.stats, run.elapsed);
  EXPECT_EQ(format_json(options, run, summary).find("\"tls\":{"), std::string::npos);
  const std::string text = format_text(options, run, summary);
  EXPECT_NE(text.find("(refused 0, reset 0, timeout 0, wrong_reply 0, other 0)"), std::string::npos)
      << text;
  EXPECT_EQ(text.find("handshake"), std::string::npos) << text;
}

}  // namespace
}  // namespace salam::bench
