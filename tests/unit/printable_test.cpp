// printable(), and the log's escaping of what it is given: no value, from
// a flag, a file or a client, can forge a line or make one endless.
#include <string>

#include <gtest/gtest.h>
#include <unistd.h>

#include <salam/log.hpp>
#include <salam/printable.hpp>

namespace salam {
namespace {

using namespace std::string_literals;

TEST(Printable, EscapesWhatIsNotPrintableAsciiAndCutsLongText) {
  EXPECT_EQ(printable("plain text"), "plain text");
  EXPECT_EQ(printable("a\nb\x1b[2J\\"), "a\\x0ab\\x1b[2J\\x5c");
  EXPECT_EQ(printable("\0\x7f\xc3\xa9"s), "\\x00\\x7f\\xc3\\xa9");
  EXPECT_EQ(printable(std::string(100, 'x'), 10), "xxxxxxxxxx... (90 more bytes)");
  EXPECT_EQ(printable(std::string(10, 'x'), 10), "xxxxxxxxxx");
}

// Captures what the log writes through a pipe.
class LogCapture : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::pipe(pipe_), 0);
    saved_ = log::settings();
  }
  void TearDown() override {
    log::configure(saved_);
    ::close(pipe_[0]);
    ::close(pipe_[1]);
  }
  std::string line(log::Format format, std::string_view message) {
    log::configure({log::Level::info, format, pipe_[1]});
    log::info("{}", message);
    log::flush_thread_buffer();
    std::string text(256 * 1024, '\0');
    const ssize_t n = ::read(pipe_[0], text.data(), text.size());
    text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return text;
  }

  int pipe_[2] = {-1, -1};
  log::Settings saved_{};
};

TEST_F(LogCapture, TextLinesEscapeControlCharacters) {
  const std::string text = line(log::Format::text, "a\nZ info FORGED\r\x1b[2J b\\c é");
  EXPECT_NE(text.find(" info a\\x0aZ info FORGED\\x0d\\x1b[2J b\\c é\n"), std::string::npos)
      << text;
  EXPECT_EQ(text.find('\n'), text.size() - 1) << "one line";
}

TEST_F(LogCapture, LongMessagesAreCutInBothFormats) {
  for (auto format : {log::Format::text, log::Format::json}) {
    const std::string text = line(format, std::string(100'000, 'v'));
    EXPECT_LT(text.size(), 17'000u);
    EXPECT_NE(text.find("... (83616 more bytes)"), std::string::npos);
    EXPECT_EQ(text.find('\n'), text.size() - 1) << "one line";
  }
}

}  // namespace
}  // namespace salam
