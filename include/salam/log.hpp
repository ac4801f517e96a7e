// Logging: one line per event, on stderr by default.
//
// Lines are formatted into a per-thread buffer. On a loop's thread the
// buffer is handed over once per loop turn, so logging every connection
// does not cost a lock or a system call each; elsewhere every line is
// handed over at once. Buffers go to one writer thread, started by the
// first line, which alone writes to the descriptors, with blocking
// write(2): a destination that blocks (a full pipe, a stuck terminal)
// never stalls a loop. At most kQueueLimit bytes wait for it; a buffer
// that would go over is dropped whole and its lines counted
// (dropped_lines()), and once the writer gets to the gap it writes
// `log: N line(s) dropped: the log destination was not keeping up` there,
// at warning level. Lines of one thread keep their order, and lines of
// different threads never interleave mid-line.
//
// At exit (std::atexit, after the exiting thread's own lines are handed
// over) the writer gets up to 2 s to write what is queued; a destination
// stuck longer loses it, and the process ends anyway.
//
// fork(): the child has no writer thread. It writes its lines itself,
// blocking, as a thread did before there was a writer; what the parent had
// queued is not its to write.
//
// Format `text`: `2026-11-26T04:55:01.123Z info client 127.0.0.1:54321 connected`
// Format `json`: `{"time":"...","level":"info","msg":"client 127.0.0.1:54321 connected"}`
//
// Threading: all of it is thread-safe; configure() may be called while
// other threads log (a reload does).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <fmt/format.h>

#include <salam/time.hpp>

namespace salam::log {

enum class Level : std::uint8_t { debug, info, warning, error, critical, off };
enum class Format : std::uint8_t { text, json };
// The access log (one record per connection) may have a file of its own.
enum class Stream : std::uint8_t { main, access };

struct Settings {
  Level level = Level::info;
  Format format = Format::text;
  int fd = 2;
};
// A new `fd` takes effect once what is queued for the old one is written
// (waiting up to 1 s: a stuck destination does not hold the change).
void configure(const Settings& settings) noexcept;
Settings settings() noexcept;

namespace detail {
extern std::atomic<Level> minimum_level;
}
inline bool enabled(Level level) noexcept {
  return level >= detail::minimum_level.load(std::memory_order_relaxed);
}

// Parses "debug", "info", "warning", "error", "critical" or "off"; throws
// std::invalid_argument.
Level parse_level(std::string_view text);
std::string_view to_string(Level level) noexcept;

namespace detail {
// Starts a line in the thread's buffer and returns where the message goes.
fmt::memory_buffer& begin_line(Level level, Stream stream = Stream::main);
// Ends the line begun by begin_line: the message is escaped (JSON) or its
// control characters written as \xNN (text), and cut after 16 KiB.
void end_line();
}  // namespace detail

template <typename... Args>
void message(Level level, fmt::format_string<Args...> format, Args&&... args) {
  if (!enabled(level)) return;
  auto& out = detail::begin_line(level);
  fmt::format_to(fmt::appender(out), format, std::forward<Args>(args)...);
  detail::end_line();
}

template <typename... Args>
void debug(fmt::format_string<Args...> format, Args&&... args) {
  message(Level::debug, format, std::forward<Args>(args)...);
}
template <typename... Args>
void info(fmt::format_string<Args...> format, Args&&... args) {
  message(Level::info, format, std::forward<Args>(args)...);
}
template <typename... Args>
void warning(fmt::format_string<Args...> format, Args&&... args) {
  message(Level::warning, format, std::forward<Args>(args)...);
}
template <typename... Args>
void error(fmt::format_string<Args...> format, Args&&... args) {
  message(Level::error, format, std::forward<Args>(args)...);
}
template <typename... Args>
void critical(fmt::format_string<Args...> format, Args&&... args) {
  message(Level::critical, format, std::forward<Args>(args)...);
}

namespace detail {
fmt::memory_buffer& begin_json_event(Level level, std::string_view event, Stream stream);
void end_json_event();
}  // namespace detail

// A structured event, for machines: one JSON object per line,
// {"time":...,"level":...,"event":EVENT,...}, where `fields` appends the
// rest with the append_json_* helpers. Written whatever the format setting
// (callers choose between this and message()).
template <typename Fields>
void json_event(Level level, std::string_view event, Fields&& fields,
                Stream stream = Stream::main) {
  if (!enabled(level)) return;
  fields(detail::begin_json_event(level, event, stream));
  detail::end_json_event();
}

// A line of the access log (at info level), in the text format.
template <typename... Args>
void access_line(fmt::format_string<Args...> format, Args&&... args) {
  if (!enabled(Level::info)) return;
  auto& out = detail::begin_line(Level::info, Stream::access);
  fmt::format_to(fmt::appender(out), format, std::forward<Args>(args)...);
  detail::end_line();
}

// Sends access records to `fd` (a file of their own), or with the other
// lines when -1. Replacing the file under the same descriptor number
// (dup2) is how it is reopened for log rotation: the writer never sees a
// closed descriptor. A different `fd` takes effect once what is queued is
// written (waiting up to 1 s), so that the old one may be closed next.
void set_access_fd(int fd) noexcept;

// Appends `,"key":"value"` (escaped) or `,"key":number`.
void append_json_field(fmt::memory_buffer& out, std::string_view key, std::string_view value);
void append_json_field(fmt::memory_buffer& out, std::string_view key, std::uint64_t value);
void append_json_field(fmt::memory_buffer& out, std::string_view key, double value);
void append_json_flag(fmt::memory_buffer& out, std::string_view key, bool value);

// The most bytes that wait for the writer (queued, or being written).
inline constexpr std::size_t kQueueLimit = 4 * 1024 * 1024;

// Hands what this thread has buffered to the writer. Loops call it once
// per turn, and it returns at once. On a thread that does not buffer (not
// a loop's), it also waits, up to 1 s, until everything handed over so far
// is written: a caller that writes to stderr itself next, or exits, sees
// the lines first.
void flush_thread_buffer() noexcept;
// While set on a thread, lines wait for flush_thread_buffer().
void set_thread_buffering(bool on) noexcept;
// Hands this thread's lines over and waits until everything handed over
// so far, by any thread, is written (or dropped), up to `timeout`. False
// if it was not done in time. It blocks: not for a loop's thread.
bool drain(Duration timeout) noexcept;
// Ends the thread that writes the lines, once it has written them (up to
// `timeout`); the next line starts a new one. For a program about to
// restrict itself in a way only threads created afterwards inherit
// (Landlock): the new writer is then restricted too. False if the writer
// did not finish in time (it is left running). Only while no other thread
// logs.
bool restart_writer(Duration timeout) noexcept;
// Lines dropped because the queue was full, since the process started.
std::uint64_t dropped_lines() noexcept;

// Appends `text` to `out` escaped as the inside of a JSON string.
void append_json_escaped(fmt::memory_buffer& out, std::string_view text);

}  // namespace salam::log
