#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include <poll.h>
#include <pthread.h>
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

// How long flush_thread_buffer() off a loop, and configure() changing the
// descriptor, wait for the writer; and how long the exit waits for it.
constexpr auto kFlushWait = std::chrono::seconds(1);
constexpr auto kExitWait = std::chrono::seconds(2);
// A buffer the writer keeps between batches, at most: one burst does not
// hold its memory for good.
constexpr std::size_t kKeptCapacity = 256 * 1024;
// Once woken, the writer lets lines gather this long before it writes, so
// that a busy server costs one wake-up and one write(2) per batch rather
// than per loop turn (a thread switch each: measured at a third more CPU
// per logged greeting); handing lines over wakes it only when it is idle.
constexpr auto kGather = std::chrono::milliseconds(1);

std::atomic<std::uint64_t> dropped_total{0};

// The formatted "YYYY-MM-DDTHH:MM:SS" of the last second seen.
struct TimeCache {
  std::time_t second = -1;
  std::array<char, 20> text{};
};

void append_time(TimeCache& cache, fmt::memory_buffer& out) {
  auto now = std::chrono::system_clock::now();
  auto since_epoch = now.time_since_epoch();
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds);
  std::time_t second = static_cast<std::time_t>(seconds.count());
  if (second != cache.second) {
    std::tm parts{};
    ::gmtime_r(&second, &parts);
    std::strftime(cache.text.data(), cache.text.size(), "%Y-%m-%dT%H:%M:%S", &parts);
    cache.second = second;
  }
  fmt::format_to(fmt::appender(out), "{}.{:03}Z", cache.text.data(), millis.count());
}

std::uint64_t count_lines(std::string_view text) noexcept {
  return static_cast<std::uint64_t>(std::count(text.begin(), text.end(), '\n'));
}

// Writes all of `text` to `fd`, blocking (waiting in poll() if the
// descriptor is non-blocking); `progress(n)` is told of every piece
// written, or given up: a descriptor that fails is dropped, not retried.
template <typename Progress>
void write_all(int fd, std::string_view text, Progress&& progress) noexcept {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd writable{fd, POLLOUT, 0};
      if (::poll(&writable, 1, -1) >= 0 || errno == EINTR) continue;
    }
    if (n <= 0) {  // nowhere to write: drop rather than spin
      progress(text.size());
      return;
    }
    progress(static_cast<std::size_t>(n));
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

int main_fd() noexcept {
  return current_fd.load(std::memory_order_relaxed);
}
int access_or_main_fd() noexcept {
  const int fd = access_fd.load(std::memory_order_relaxed);
  return fd >= 0 ? fd : main_fd();
}

class Writer;
Writer& writer() noexcept;

// The one thread that writes the lines: threads hand it their buffers and
// go on; it alone may block in write(2). What waits for it is bounded by
// kQueueLimit bytes; what would go over is dropped, whole buffers, and
// counted in lines. Never destroyed (it is leaked on purpose), so that a
// line logged by a static object's destructor finds it.
class Writer {
 public:
  // Queues `lines` (for the main descriptor) and `access` (for the
  // access log's), or drops them; both are cleared.
  void hand_over(fmt::memory_buffer& lines, fmt::memory_buffer& access) noexcept {
    if (forked.load(std::memory_order_relaxed)) return write_here(lines, access);
    std::unique_lock lock(mutex_);
    if (state_ == State::unstarted) start();
    if (state_ == State::direct || state_ == State::exited) {
      lock.unlock();
      return write_here(lines, access);
    }
    const std::size_t size = lines.size() + access.size();
    bool queued = accepted_ - done_ + size <= kQueueLimit;
    if (queued) {
      try {
        lines_.append(lines.data(), lines.size());
        try {
          access_.append(access.data(), access.size());
        } catch (...) {
          lines_.resize(lines_.size() - lines.size());
          throw;
        }
        accepted_ += size;
      } catch (...) {  // out of memory: dropped like the lines that do not fit
        queued = false;
      }
    }
    if (!queued) {
      const std::uint64_t count = count_lines(std::string_view(lines.data(), lines.size())) +
                                  count_lines(std::string_view(access.data(), access.size()));
      if (unreported_ == 0) gap_ = lines_.size();
      unreported_ += count;
      dropped_total.fetch_add(count, std::memory_order_relaxed);
    }
    lines.clear();
    access.clear();
    const bool wake = idle_;
    lock.unlock();
    if (wake) work_.notify_one();
  }

  // Waits until everything queued so far is written (or given up); false
  // after `timeout`.
  bool drain(Duration timeout) noexcept {
    if (forked.load(std::memory_order_relaxed)) return true;
    std::unique_lock lock(mutex_);
    const std::uint64_t ticket = accepted_;
    return written_.wait_for(lock, timeout, [&] {
      return done_ >= ticket || state_ == State::exited || state_ == State::direct;
    });
  }

  // At exit: waits up to `timeout` for the writer to write what it has,
  // then lets it end. A writer stuck on its descriptor is left behind;
  // the process's end ends it.
  void stop(Duration timeout) noexcept {
    if (forked.load(std::memory_order_relaxed)) return;
    std::unique_lock lock(mutex_);
    if (state_ != State::running) return;
    stopping_ = true;
    work_.notify_one();
    if (written_.wait_for(lock, timeout, [&] { return state_ == State::exited; })) {
      lock.unlock();
      thread_.join();
    } else {
      thread_.detach();
    }
  }

  // See log::restart_writer().
  bool restart(Duration timeout) noexcept {
    if (forked.load(std::memory_order_relaxed)) return true;
    std::unique_lock lock(mutex_);
    if (state_ != State::running) return true;
    stopping_ = true;
    work_.notify_one();
    if (!written_.wait_for(lock, timeout, [&] { return state_ == State::exited; })) {
      stopping_ = false;
      return false;
    }
    lock.unlock();
    thread_.join();
    lock.lock();
    stopping_ = false;
    state_ = State::unstarted;
    return true;
  }

 private:
  enum class State : std::uint8_t {
    unstarted,
    running,
    direct,  // the thread could not be started
    exited,  // stopped at exit, everything written
  };

  // Set in a child of fork(), which has no writer thread, and may have
  // the lock as another thread held it at the fork.
  static inline std::atomic<bool> forked{false};

  // With no thread to hand them to (it could not start, the process is
  // exiting and it has finished, or this is a child of fork()), lines are
  // written by the thread that logs them, as they were before there was a
  // writer.
  static void write_here(fmt::memory_buffer& lines, fmt::memory_buffer& access) noexcept {
    write_all(main_fd(), std::string_view(lines.data(), lines.size()), [](std::size_t) {});
    write_all(access_or_main_fd(), std::string_view(access.data(), access.size()),
              [](std::size_t) {});
    lines.clear();
    access.clear();
  }

  // With the lock held.
  void start() noexcept {
    // The writer takes no signal: a process that waits for its signals
    // (sigwait) keeps them, and a closed pipe is an EPIPE, not a SIGPIPE.
    sigset_t all, previous;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &previous);
    try {
      thread_ = std::thread([this] { run(); });
      state_ = State::running;
    } catch (...) {
      state_ = State::direct;
    }
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    if (state_ != State::running || started_before_) return;
    started_before_ = true;  // a restarted writer is already provided for
    std::atexit([] { writer().stop(kExitWait); });
    // Async-signal-safe, as a child between fork() and exec() must be.
    ::pthread_atfork(nullptr, nullptr, [] { forked.store(true, std::memory_order_relaxed); });
  }

  bool has_work() const noexcept { return !lines_.empty() || !access_.empty() || unreported_ > 0; }

  void run() noexcept {
    std::string lines, access;
    TimeCache time;
    fmt::memory_buffer report;
    // Named by itself: naming another thread writes to /proc, which a
    // confined process may not open.
    ::pthread_setname_np(::pthread_self(), "salam-log");
    std::unique_lock lock(mutex_);
    for (;;) {
      idle_ = true;
      work_.wait(lock, [&] { return has_work() || stopping_; });
      idle_ = false;
      if (!has_work()) break;
      if (!stopping_) {
        lock.unlock();
        std::this_thread::sleep_for(kGather);
        lock.lock();
      }
      lines.swap(lines_);
      access.swap(access_);
      const std::size_t gap = std::min(gap_, lines.size());
      const std::uint64_t dropped = std::exchange(unreported_, 0);
      gap_ = std::string::npos;
      lock.unlock();

      const auto count = [this](std::size_t n) {
        {
          std::lock_guard done(mutex_);
          done_ += n;
        }
        written_.notify_all();
      };
      const std::string_view text(lines);
      write_all(main_fd(), text.substr(0, gap), count);
      if (dropped > 0 && enabled(Level::warning)) {
        report.clear();
        format_report(report, time, dropped);
        write_all(main_fd(), std::string_view(report.data(), report.size()), [](std::size_t) {});
      }
      write_all(main_fd(), text.substr(gap), count);
      write_all(access_or_main_fd(), access, count);
      for (std::string* buffer : {&lines, &access}) {
        buffer->clear();
        if (buffer->capacity() > kKeptCapacity) std::string().swap(*buffer);
      }
      lock.lock();
    }
    state_ = State::exited;
    lock.unlock();
    written_.notify_all();
  }

  // The line that says lines were dropped, in the format of the others.
  static void format_report(fmt::memory_buffer& out, TimeCache& time, std::uint64_t dropped) {
    constexpr std::string_view kWhy = "the log destination was not keeping up";
    if (current_format.load(std::memory_order_relaxed) == Format::json) {
      out.append(std::string_view(R"({"time":")"));
      append_time(time, out);
      fmt::format_to(fmt::appender(out),
                     R"(","level":"warning","msg":"log: {} line(s) dropped: {}"}})"
                     "\n",
                     dropped, kWhy);
    } else {
      append_time(time, out);
      fmt::format_to(fmt::appender(out), " warning log: {} line(s) dropped: {}\n", dropped, kWhy);
    }
  }

  std::mutex mutex_;
  std::condition_variable work_;         // something to write, or stopping_
  std::condition_variable written_;      // done_ moved, or the state changed
  std::string lines_;                    // queued for the main descriptor
  std::string access_;                   // queued for the access log's
  std::uint64_t accepted_ = 0;           // bytes queued, ever
  std::uint64_t done_ = 0;               // bytes written (or given up), ever
  std::uint64_t unreported_ = 0;         // lines dropped since the last report
  std::size_t gap_ = std::string::npos;  // where in lines_ they were
  State state_ = State::unstarted;
  bool stopping_ = false;
  bool idle_ = false;            // the writer waits for work: handing over must wake it
  bool started_before_ = false;  // the exit and fork handlers are registered
  std::thread thread_;
};

Writer& writer() noexcept {
  static Writer* const instance = new Writer;
  return *instance;
}

struct ThreadLog {
  fmt::memory_buffer lines;
  fmt::memory_buffer access_lines;       // only when the access log has its own file
  fmt::memory_buffer message;            // the line's message, before escaping
  fmt::memory_buffer* current = &lines;  // where the line being written goes
  bool buffering = false;
  bool json = false;  // the format of the line being written
  TimeCache time;

  ~ThreadLog() { flush(); }

  // Hands the lines to the writer.
  void flush() noexcept {
    if (lines.size() > 0 || access_lines.size() > 0) writer().hand_over(lines, access_lines);
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

}  // namespace

namespace detail {
std::atomic<Level> minimum_level{Level::info};
}

void configure(const Settings& settings) noexcept {
  // What was logged for the old descriptor goes there.
  if (settings.fd != current_fd.load(std::memory_order_relaxed)) drain(kFlushWait);
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
    append_time(log.time, out);
    fmt::format_to(fmt::appender(out), R"(","level":"{}","msg":")", to_string(level));
    log.message.clear();
    return log.message;
  }
  append_time(log.time, out);
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
  append_time(log.time, out);
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
  ThreadLog& log = thread_log();
  log.flush();
  if (!log.buffering) writer().drain(kFlushWait);
}

bool drain(Duration timeout) noexcept {
  thread_log().flush();
  return writer().drain(timeout);
}

bool restart_writer(Duration timeout) noexcept {
  thread_log().flush();
  return writer().restart(timeout);
}

std::uint64_t dropped_lines() noexcept {
  return dropped_total.load(std::memory_order_relaxed);
}

void set_access_fd(int fd) noexcept {
  // What was logged for the old descriptor goes there: it may be closed
  // next.
  if (fd != access_fd.load(std::memory_order_relaxed)) drain(kFlushWait);
  access_fd.store(fd, std::memory_order_relaxed);
}

void set_thread_buffering(bool on) noexcept {
  ThreadLog& log = thread_log();
  log.buffering = on;
  if (!on) log.flush();
}

}  // namespace salam::log
