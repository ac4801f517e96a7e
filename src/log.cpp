#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <stdexcept>
#include <string>

#include <unistd.h>

#include <salam/log.hpp>
#include <salam/printable.hpp>

namespace salam::log {

namespace {

// The level lives in detail::minimum_level (read on every log call); the
// rest here, each field atomic so that a reload can change them.
std::atomic<Format> current_format{Format::text};
std::atomic<int> current_fd{2};
std::atomic<int> access_fd{-1};  // -1: access records go with the other lines

// A line longer than this is still written whole; the threshold only
// decides when a buffering thread writes before the end of its turn.
constexpr std::size_t kFlushThreshold = 32 * 1024;
// A message is cut after this many bytes: whatever a caller quotes (a
// 100 KB flag, a client's bytes), a line stays a line.
constexpr std::size_t kMaxMessage = 16 * 1024;

void write_all(int fd, fmt::memory_buffer& buffer) noexcept {
  const char* data = buffer.data();
  std::size_t left = buffer.size();
  while (left > 0) {
    ssize_t n = ::write(fd, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // nowhere to write: drop rather than block or spin
    data += n;
    left -= static_cast<std::size_t>(n);
  }
  buffer.clear();
}

struct ThreadLog {
  fmt::memory_buffer lines;
  fmt::memory_buffer access_lines;       // only when the access log has its own file
  fmt::memory_buffer message;            // the line's message, before escaping
  fmt::memory_buffer* current = &lines;  // where the line being written goes
  bool buffering = false;
  bool json = false;  // the format of the line being written
  // The formatted "YYYY-MM-DDTHH:MM:SS" of the last second seen.
  std::time_t cached_second = -1;
  std::array<char, 20> second_text{};

  ~ThreadLog() { flush(); }

  void flush() noexcept {
    if (lines.size() > 0) write_all(current_fd.load(std::memory_order_relaxed), lines);
    if (access_lines.size() > 0) {
      const int fd = access_fd.load(std::memory_order_relaxed);
      write_all(fd >= 0 ? fd : current_fd.load(std::memory_order_relaxed), access_lines);
    }
  }

  fmt::memory_buffer& select(Stream stream) noexcept {
    const bool own_file =
        stream == Stream::access && access_fd.load(std::memory_order_relaxed) >= 0;
    current = own_file ? &access_lines : &lines;
    return *current;
  }

  bool full() const noexcept { return lines.size() + access_lines.size() >= kFlushThreshold; }
};

ThreadLog& thread_log() {
  thread_local ThreadLog log;
  return log;
}

void append_time(ThreadLog& log, fmt::memory_buffer& out) {
  auto now = std::chrono::system_clock::now();
  auto since_epoch = now.time_since_epoch();
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds);
  std::time_t second = static_cast<std::time_t>(seconds.count());
  if (second != log.cached_second) {
    std::tm parts{};
    ::gmtime_r(&second, &parts);
    std::strftime(log.second_text.data(), log.second_text.size(), "%Y-%m-%dT%H:%M:%S", &parts);
    log.cached_second = second;
  }
  fmt::format_to(fmt::appender(out), "{}.{:03}Z", log.second_text.data(), millis.count());
}

}  // namespace

namespace detail {
std::atomic<Level> minimum_level{Level::info};
}

void configure(const Settings& settings) noexcept {
  detail::minimum_level.store(settings.level, std::memory_order_relaxed);
  current_format.store(settings.format, std::memory_order_relaxed);
  current_fd.store(settings.fd, std::memory_order_relaxed);
}

Settings settings() noexcept {
  return Settings{detail::minimum_level.load(std::memory_order_relaxed),
                  current_format.load(std::memory_order_relaxed),
                  current_fd.load(std::memory_order_relaxed)};
}

Level parse_level(std::string_view text) {
  if (text == "debug") return Level::debug;
  if (text == "info") return Level::info;
  if (text == "warning" || text == "warn") return Level::warning;
  if (text == "error") return Level::error;
  if (text == "critical") return Level::critical;
  if (text == "off") return Level::off;
  throw std::invalid_argument("unknown log level '" + printable(text) +
                              "' (expected debug, info, warning, error, critical or off)");
}

std::string_view to_string(Level level) noexcept {
  switch (level) {
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warning:
      return "warning";
    case Level::error:
      return "error";
    case Level::critical:
      return "critical";
    case Level::off:
      return "off";
  }
  return "?";
}

void append_json_escaped(fmt::memory_buffer& out, std::string_view text) {
  for (char c : text) {
    switch (c) {
      case '"':
        out.append(std::string_view("\\\""));
        break;
      case '\\':
        out.append(std::string_view("\\\\"));
        break;
      case '\n':
        out.append(std::string_view("\\n"));
        break;
      case '\r':
        out.append(std::string_view("\\r"));
        break;
      case '\t':
        out.append(std::string_view("\\t"));
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          fmt::format_to(fmt::appender(out), "\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out.push_back(c);
        }
    }
  }
}

namespace {

// Text lines keep their message as it is, but for control characters: no
// newline or terminal escape in a value can forge or hide a line.
void append_text_escaped(fmt::memory_buffer& out, std::string_view text) {
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      fmt::format_to(fmt::appender(out), "\\x{:02x}", static_cast<unsigned>(byte));
    } else {
      out.push_back(c);
    }
  }
}

}  // namespace

namespace detail {

fmt::memory_buffer& begin_line(Level level, Stream stream) {
  ThreadLog& log = thread_log();
  fmt::memory_buffer& out = log.select(stream);
  log.json = current_format.load(std::memory_order_relaxed) == Format::json;
  if (log.json) {
    out.append(std::string_view(R"({"time":")"));
    append_time(log, out);
    fmt::format_to(fmt::appender(out), R"(","level":"{}","msg":")", to_string(level));
    log.message.clear();
    return log.message;
  }
  append_time(log, out);
  fmt::format_to(fmt::appender(out), " {} ", to_string(level));
  log.message.clear();
  return log.message;
}

void end_line() {
  ThreadLog& log = thread_log();
  fmt::memory_buffer& out = *log.current;
  const std::string_view message(log.message.data(), std::min(log.message.size(), kMaxMessage));
  if (log.json) {
    append_json_escaped(out, message);
  } else {
    append_text_escaped(out, message);
  }
  if (log.message.size() > kMaxMessage) {
    fmt::format_to(fmt::appender(out), "... ({} more bytes)", log.message.size() - kMaxMessage);
  }
  if (log.json) out.append(std::string_view("\"}"));
  out.push_back('\n');
  if (!log.buffering || log.full()) log.flush();
}

fmt::memory_buffer& begin_json_event(Level level, std::string_view event, Stream stream) {
  ThreadLog& log = thread_log();
  fmt::memory_buffer& out = log.select(stream);
  out.append(std::string_view(R"({"time":")"));
  append_time(log, out);
  fmt::format_to(fmt::appender(out), R"(","level":"{}","event":")", to_string(level));
  append_json_escaped(out, event);
  out.push_back('"');
  return out;
}

void end_json_event() {
  ThreadLog& log = thread_log();
  log.current->append(std::string_view("}\n"));
  if (!log.buffering || log.full()) log.flush();
}

}  // namespace detail

void append_json_field(fmt::memory_buffer& out, std::string_view key, std::string_view value) {
  fmt::format_to(fmt::appender(out), R"(,"{}":")", key);
  append_json_escaped(out, value);
  out.push_back('"');
}

void append_json_field(fmt::memory_buffer& out, std::string_view key, std::uint64_t value) {
  fmt::format_to(fmt::appender(out), R"(,"{}":{})", key, value);
}

void append_json_field(fmt::memory_buffer& out, std::string_view key, double value) {
  fmt::format_to(fmt::appender(out), R"(,"{}":{:.3f})", key, value);
}

void append_json_flag(fmt::memory_buffer& out, std::string_view key, bool value) {
  fmt::format_to(fmt::appender(out), R"(,"{}":{})", key, value ? "true" : "false");
}

void flush_thread_buffer() noexcept {
  thread_log().flush();
}

void set_access_fd(int fd) noexcept {
  access_fd.store(fd, std::memory_order_relaxed);
}

void set_thread_buffering(bool on) noexcept {
  ThreadLog& log = thread_log();
  log.buffering = on;
  if (!on) log.flush();
}

}  // namespace salam::log
