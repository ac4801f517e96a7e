// The log's writer thread: lines reach the descriptor in order, a
// destination that does not read never blocks the thread that logs (lines
// are dropped and counted, then reported), and what is logged just before
// exit is written.
#include <chrono>
#include <cstdlib>
#include <regex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <salam/log.hpp>

#include "sanitizers.hpp"

namespace salam {
namespace {

using namespace std::chrono_literals;

// A logging thread that blocked would never finish: the bound only has to
// be above what formatting the lines takes, ten times slower instrumented.
constexpr auto kPromptly = detail::kSanitized ? 10s : 2s;

class LogWriter : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::pipe(pipe_), 0);
    saved_ = log::settings();
    log::configure({log::Level::info, log::Format::text, pipe_[1]});
  }
  void TearDown() override {
    log::configure(saved_);  // waits for what is queued for the pipe
    if (pipe_[1] >= 0) ::close(pipe_[1]);
    ::close(pipe_[0]);
  }

  // Reads what the pipe has until `done(text)` or `timeout`.
  template <typename Done>
  bool read_until(std::string& text, Done done, std::chrono::seconds timeout = 10s) {
    const auto give_up = std::chrono::steady_clock::now() + timeout;
    std::vector<char> chunk(64 * 1024);
    while (!done(text)) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          give_up - std::chrono::steady_clock::now());
      if (left <= 0ms) return false;
      pollfd readable{pipe_[0], POLLIN, 0};
      if (::poll(&readable, 1, static_cast<int>(left.count())) <= 0) continue;
      const ssize_t n = ::read(pipe_[0], chunk.data(), chunk.size());
      if (n <= 0) return done(text);
      text.append(chunk.data(), static_cast<std::size_t>(n));
    }
    return true;
  }

  int pipe_[2] = {-1, -1};
  log::Settings saved_{};
};

// The numbers after `tag` in the lines of `text`, in their order.
std::vector<int> numbers_of(const std::string& text, const std::string& tag) {
  std::vector<int> numbers;
  const std::string marker = " info " + tag + " ";
  for (std::size_t at = text.find(marker); at != std::string::npos;
       at = text.find(marker, at + 1)) {
    numbers.push_back(std::atoi(text.c_str() + at + marker.size()));
  }
  return numbers;
}

TEST_F(LogWriter, LinesOfEachThreadReachTheDescriptorInOrder) {
  constexpr int kLines = 20'000;  // about 1.5 MB: under the queue's limit, nothing is dropped
  const std::uint64_t dropped_before = log::dropped_lines();
  std::string text;
  std::thread reader([&] {
    read_until(
        text, [](const std::string&) { return false; }, 60s);
  });
  // One thread buffers as a loop does, one hands over every line.
  std::thread looping([] {
    log::set_thread_buffering(true);
    for (int i = 0; i < kLines; ++i) {
      log::info("looping {} of a thread that buffers", i);
      if (i % 50 == 49) log::flush_thread_buffer();
    }
    log::set_thread_buffering(false);
  });
  std::thread plain([] {
    for (int i = 0; i < kLines; ++i)
      log::info("plain {} of a thread that does not", i);
  });
  looping.join();
  plain.join();
  EXPECT_TRUE(log::drain(10s));
  log::configure(saved_);
  ::close(pipe_[1]);  // the reader's end of file
  pipe_[1] = -1;
  reader.join();

  EXPECT_EQ(log::dropped_lines(), dropped_before);
  for (const char* tag : {"looping", "plain"}) {
    const std::vector<int> numbers = numbers_of(text, tag);
    ASSERT_EQ(numbers.size(), static_cast<std::size_t>(kLines)) << tag;
    for (int i = 0; i < kLines; ++i)
      ASSERT_EQ(numbers[static_cast<std::size_t>(i)], i) << tag;
  }
  // Whole lines: each is a timestamp, a level and one message.
  static const std::regex kLine(
      R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info (looping|plain) \d+ of a thread that (buffers|does not))");
  std::size_t lines = 0;
  for (std::size_t start = 0, end; (end = text.find('\n', start)) != std::string::npos;
       start = end + 1, ++lines) {
    ASSERT_TRUE(std::regex_match(text.substr(start, end - start), kLine))
        << text.substr(start, end - start);
  }
  EXPECT_EQ(lines, 2u * kLines);
}

TEST_F(LogWriter, AFlushOffALoopWaitsUntilTheLineIsWritten) {
  log::info("written before flush_thread_buffer() returns");
  log::flush_thread_buffer();
  pollfd readable{pipe_[0], POLLIN, 0};
  ASSERT_EQ(::poll(&readable, 1, 0), 1) << "nothing to read yet";
  std::string text(4096, '\0');
  text.resize(static_cast<std::size_t>(::read(pipe_[0], text.data(), text.size())));
  EXPECT_NE(text.find(" info written before flush_thread_buffer() returns\n"), std::string::npos)
      << text;
}

TEST_F(LogWriter, ADestinationThatDoesNotReadDropsLinesInsteadOfBlocking) {
  // 100,000 lines of about 100 bytes: more than the pipe (64 KiB) and the
  // queue (4 MiB) hold together.
  constexpr int kLines = 100'000;
  const std::string filler(60, 'x');
  const std::uint64_t dropped_before = log::dropped_lines();
  const auto started = std::chrono::steady_clock::now();
  std::thread looping([&] {
    log::set_thread_buffering(true);
    for (int i = 0; i < kLines; ++i) {
      log::info("stuck {} {}", i, filler);
      if (i % 64 == 63) log::flush_thread_buffer();
    }
    log::set_thread_buffering(false);
  });
  looping.join();
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_LT(took, kPromptly) << "the logging thread waited for the destination";
  const std::uint64_t dropped = log::dropped_lines() - dropped_before;
  EXPECT_GT(dropped, 0u);
  EXPECT_LT(dropped, static_cast<std::uint64_t>(kLines));

  // Off a loop, waiting for the destination is bounded too.
  const auto drain_started = std::chrono::steady_clock::now();
  EXPECT_FALSE(log::drain(100ms));
  log::flush_thread_buffer();
  EXPECT_LT(std::chrono::steady_clock::now() - drain_started, 3s);

  // Once the pipe is read, the writer catches up and says what it lost,
  // where it lost it.
  constexpr std::string_view kReport =
      " warning log: {} line(s) dropped: the log destination was not keeping up\n";
  const std::string tail(kReport.substr(kReport.find("{}") + 2));
  std::string text;
  ASSERT_TRUE(
      read_until(text, [&](const std::string& t) { return t.find(tail) != std::string::npos; }))
      << text.size() << " bytes read, no report";
  const std::size_t report_end = text.find(tail) + tail.size();
  const std::size_t report_at = text.rfind('\n', report_end - 2) + 1;
  const std::string report = text.substr(report_at, report_end - report_at);
  EXPECT_EQ(report.substr(report.find(" warning ")), fmt::format(fmt::runtime(kReport), dropped))
      << report;

  log::info("the end");
  ASSERT_TRUE(read_until(
      text, [](const std::string& t) { return t.find(" info the end\n") != std::string::npos; }));
  const std::vector<int> numbers = numbers_of(text, "stuck");
  EXPECT_EQ(numbers.size() + dropped, static_cast<std::size_t>(kLines));
  // Before the report, the first lines, each once, in order.
  const std::vector<int> before = numbers_of(text.substr(0, report_at), "stuck");
  ASSERT_FALSE(before.empty());
  for (std::size_t i = 0; i < before.size(); ++i)
    ASSERT_EQ(before[i], static_cast<int>(i));
  EXPECT_EQ(text.find(tail, report_end), std::string::npos) << "one report";
}

TEST_F(LogWriter, TheReportFollowsTheFormat) {
  log::configure({log::Level::info, log::Format::json, pipe_[1]});
  const std::uint64_t dropped_before = log::dropped_lines();
  std::thread looping([] {
    log::set_thread_buffering(true);
    for (int i = 0; i < 100'000; ++i) {
      log::info("json {} {}", i, std::string(60, 'j'));
      if (i % 64 == 63) log::flush_thread_buffer();
    }
    log::set_thread_buffering(false);
  });
  looping.join();
  const std::uint64_t dropped = log::dropped_lines() - dropped_before;
  ASSERT_GT(dropped, 0u);
  const std::string expected = R"(","level":"warning","msg":"log: )" + std::to_string(dropped) +
                               R"( line(s) dropped: the log destination was not keeping up"})"
                               "\n";
  std::string text;
  EXPECT_TRUE(
      read_until(text, [&](const std::string& t) { return t.find(expected) != std::string::npos; }))
      << text.size() << " bytes read, no report";
}

TEST_F(LogWriter, AccessRecordsQueuedForAFileGoThereBeforeItIsLetGo) {
  int access[2];
  ASSERT_EQ(::pipe(access), 0);
  log::set_access_fd(access[1]);
  for (int i = 0; i < 500; ++i)  // about 40 KB: the pipe holds them
    log::access_line("record {} of the access log", i);
  log::set_access_fd(-1);  // as the daemon does before it closes the file
  ::close(access[1]);
  std::string records;
  std::vector<char> chunk(64 * 1024);
  for (ssize_t n; (n = ::read(access[0], chunk.data(), chunk.size())) > 0;)
    records.append(chunk.data(), static_cast<std::size_t>(n));
  ::close(access[0]);
  EXPECT_EQ(numbers_of(records, "record").size(), 500u);
  log::info("the end");
  std::string text;
  ASSERT_TRUE(read_until(
      text, [](const std::string& t) { return t.find(" info the end\n") != std::string::npos; }));
  EXPECT_EQ(text.find("of the access log"), std::string::npos) << text;
}

TEST_F(LogWriter, AChildOfForkWritesItsOwnLines) {
  log::info("the parent's line");
  log::flush_thread_buffer();  // the writer thread runs
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    log::info("the child's line");
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  std::string text;
  EXPECT_TRUE(read_until(text, [](const std::string& t) {
    return t.find(" info the child's line\n") != std::string::npos;
  })) << text;
  EXPECT_NE(text.find(" info the parent's line\n"), std::string::npos) << text;
}

// What a program logs just before it exits is written, whether its thread
// buffers or not: exit() hands the thread's lines over and waits for the
// writer.
TEST(LogWriterDeathTest, TheLastLinesBeforeExitAreWritten) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // a fresh process, with no writer yet
  EXPECT_EXIT(
      {
        for (int i = 0; i < 1000; ++i)
          log::info("line {} before exit", i);
        std::exit(3);
      },
      ::testing::ExitedWithCode(3), "line 999 before exit\n$");
  EXPECT_EXIT(
      {
        log::set_thread_buffering(true);
        log::info("buffered, before exit");
        std::exit(4);
      },
      ::testing::ExitedWithCode(4), " info buffered, before exit\n$");
}

}  // namespace
}  // namespace salam
