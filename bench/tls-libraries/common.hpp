// Shared by the three handshake benchmarks: the server-side CPU clock, an
// in-memory byte pipe, command-line options, and the loop that runs a row.
#pragma once

#include <algorithm>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>

#include <time.h>

namespace bench {

[[noreturn]] inline void fail(const char* format, ...) {
  std::va_list args;
  va_start(args, format);
  std::fputs("FAIL: ", stderr);
  std::vfprintf(stderr, format, args);
  std::fputc('\n', stderr);
  va_end(args);
  std::exit(1);
}

inline void require(bool condition, const char* what) {
  if (!condition) fail("%s", what);
}

inline std::int64_t thread_cpu_ns() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return std::int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

// CPU time of this thread spent inside the calls it wraps, and how many
// calls it wrapped (each wrap costs about one clock read, subtracted later).
class ServerClock {
 public:
  template <class Call>
  decltype(auto) operator()(Call&& call) {
    Scope scope{*this, thread_cpu_ns()};
    return call();
  }

  std::int64_t ns() const { return ns_; }
  std::int64_t regions() const { return regions_; }
  void reset() { ns_ = regions_ = 0; }

 private:
  struct Scope {
    ServerClock& clock;
    std::int64_t start;
    ~Scope() {
      clock.ns_ += thread_cpu_ns() - start;
      ++clock.regions_;
    }
  };

  std::int64_t ns_ = 0;
  std::int64_t regions_ = 0;
};

// What one empty timed region costs: the clock's own share of each wrap.
inline double clock_overhead_ns() {
  ServerClock clock;
  constexpr int kRepeats = 100'000;
  for (int i = 0; i < kRepeats; ++i)
    clock([] {});
  return double(clock.ns()) / double(clock.regions());
}

// The server's cost of one connection, by phase.
struct ServerCost {
  ServerClock create;     // per-connection object, its transport, settings
  ServerClock handshake;  // handshake calls and the server's transport calls
  ServerClock close;      // close_notify and freeing (or resetting) the object

  void reset() {
    create.reset();
    handshake.reset();
    close.reset();
  }
};

// One direction of an in-memory connection.
class Pipe {
 public:
  void write(const void* data, std::size_t size) {
    bytes_.append(static_cast<const char*>(data), size);
  }

  // Copies up to `size` bytes out; returns how many (0 when empty).
  std::size_t read(void* out, std::size_t size) {
    std::size_t n = std::min(size, bytes_.size() - head_);
    std::memcpy(out, bytes_.data() + head_, n);
    head_ += n;
    if (head_ == bytes_.size()) clear();
    return n;
  }

  bool empty() const { return head_ == bytes_.size(); }
  void clear() {
    bytes_.clear();
    head_ = 0;
  }

 private:
  std::string bytes_;
  std::size_t head_ = 0;
};

struct Options {
  std::string cert;
  std::string key;
  int handshakes = 2000;
  int warmup = 200;
  std::string only;  // comma-separated row names; empty: every row

  bool wants(std::string_view row) const {
    if (only.empty()) return true;
    std::string_view list = only;
    while (!list.empty()) {
      std::size_t comma = list.find(',');
      if (list.substr(0, comma) == row) return true;
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
    return false;
  }
};

inline Options parse_options(int argc, char** argv) {
  Options options;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string_view flag = argv[i];
    const char* value = argv[i + 1];
    if (flag == "--cert")
      options.cert = value;
    else if (flag == "--key")
      options.key = value;
    else if (flag == "--handshakes")
      options.handshakes = std::atoi(value);
    else if (flag == "--warmup")
      options.warmup = std::atoi(value);
    else if (flag == "--only")
      options.only = value;
    else
      fail("unknown option %s", argv[i]);
  }
  if (argc % 2 == 0) fail("options come in pairs: --flag value");
  if (options.cert.empty() || options.key.empty())
    fail(
        "usage: %s --cert CERT.pem --key KEY.pem [--handshakes N] "
        "[--warmup N] [--only row,row]",
        argv[0]);
  if (options.handshakes < 1 || options.warmup < 0) fail("bad counts");
  return options;
}

// Runs `connect` warmup + handshakes times and prints one line:
//   row NAME US_PER_HANDSHAKE create=US handshake=US close=US calls=N
// where the figures are server CPU µs per handshake, the clock's own cost
// removed, and N is how many timed calls a handshake took.
inline void run_row(const Options& options, std::string_view name,
                    const std::function<void(ServerCost&)>& connect) {
  if (!options.wants(name)) return;
  static const double overhead_ns = [] {
    double ns = clock_overhead_ns();
    std::printf("info clock overhead-ns=%.0f\n", ns);
    return ns;
  }();
  ServerCost cost;
  for (int i = 0; i < options.warmup; ++i)
    connect(cost);
  cost.reset();
  for (int i = 0; i < options.handshakes; ++i)
    connect(cost);
  auto us = [&](const ServerClock& clock) {
    double ns = double(clock.ns()) - overhead_ns * double(clock.regions());
    return ns / options.handshakes / 1000.0;
  };
  double create = us(cost.create), handshake = us(cost.handshake), close = us(cost.close);
  double calls = double(cost.create.regions() + cost.handshake.regions() + cost.close.regions()) /
                 options.handshakes;
  std::printf("row %.*s %.2f create=%.2f handshake=%.2f close=%.2f calls=%.1f\n", int(name.size()),
              name.data(), create + handshake + close, create, handshake, close, calls);
  std::fflush(stdout);
}

}  // namespace bench
