// Stats: what one thread of salam-bench observed — outcomes by kind,
// bytes, and the latency histogram — and Summary, the figures reported
// from the merged Stats of all threads.
//
// Every operation ends as exactly one success or one error, so
// operations() == successes + errors holds by construction. Errors are
// never retried behind the caller's back: a wrong reply is an error too.
//
// Threading: one Stats per thread, written only by it; merged after the
// threads have ended.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <salam/time.hpp>

#include "histogram.hpp"

namespace salam::bench {

enum class ErrorKind : std::uint8_t { refused, reset, timeout, wrong_reply, tls, other };
inline constexpr std::size_t kErrorKinds = 6;

std::string_view to_string(ErrorKind kind) noexcept;
// refused: ECONNREFUSED. reset: ECONNRESET, EPIPE, ECONNABORTED (the peer
// tore the connection down). timeout: the operation's deadline passed.
// tls: a TLS handshake, read or write failed (tls::tls_failure()).
// Anything else (EADDRNOTAVAIL, EMFILE, ENOBUFS, ...) is `other`.
ErrorKind classify(std::error_code error) noexcept;

// What the TLS handshakes of the measured operations established (--tls).
struct TlsStats {
  std::uint64_t full = 0;  // handshakes that did not resume
  std::uint64_t resumed = 0;
  // Handshakes that offered a session from an earlier connection
  // (--tls-resume). Those not resumed are sessions the server refused: a
  // run whose resumption fails must say so rather than pass off full
  // handshakes as resumed ones.
  std::uint64_t offered = 0;
  // The first handshake's version and cipher suite, and the first TLS
  // failure's reason: the library's static text.
  std::string_view version;
  std::string_view cipher;
  std::string_view first_failure;
  // How long each successful handshake took, in microseconds (apart from
  // the operation's latency, which includes the TCP connect and the rest).
  Histogram handshake_us;

  std::uint64_t handshakes() const noexcept { return full + resumed; }
  void merge(const TlsStats& other) noexcept;
};

struct Stats {
  std::uint64_t successes = 0;
  std::array<std::uint64_t, kErrorKinds> errors{};
  // The first error of kind `other`, to name it in the report.
  int first_other_errno = 0;
  // Resets that came after the whole expected reply had arrived: a server
  // that closes without reading the request (nginx's `return`) makes the
  // kernel answer the request with an RST. Still errors (a client on
  // another OS may lose the reply to that RST), but worth telling apart.
  std::uint64_t resets_after_reply = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  // Latency of successful operations, in microseconds. Failed ones are
  // left out: a refused connect in 20 µs is not a fast operation.
  Histogram latency_us;
  TlsStats tls;

  void record_success(Duration latency) noexcept;
  void record_error(ErrorKind kind) noexcept { ++errors[static_cast<std::size_t>(kind)]; }
  // `tls_detail`: why a TLS failure failed (static text), if it is one.
  void record_error(std::error_code error, std::string_view tls_detail = {}) noexcept;
  // The version and cipher suite of a handshake (static text); the first
  // are kept.
  void note_negotiated(std::string_view version, std::string_view cipher) noexcept;
  // A handshake that succeeded; `offered`: it offered a saved session.
  void record_handshake(bool resumed, bool offered, Duration took) noexcept;

  std::uint64_t error_count() const noexcept;
  std::uint64_t operations() const noexcept { return successes + error_count(); }
  std::uint64_t errors_of(ErrorKind kind) const noexcept {
    return errors[static_cast<std::size_t>(kind)];
  }
  void merge(const Stats& other) noexcept;
};

// CPU time and memory of the server process, from /proc.
// One thread of the server: its name (comm) and CPU seconds.
struct ThreadCpu {
  int tid = 0;
  std::string name;
  double cpu_seconds = 0;
};

struct ServerSample {
  double cpu_seconds = 0;  // utime + stime
  std::uint64_t rss_kib = 0;
  std::vector<ThreadCpu> threads;  // by thread id
};

// The handshakes of a run (--tls).
struct TlsSummary {
  std::uint64_t handshakes = 0, full = 0, resumed = 0, offered = 0;
  std::string_view version, cipher, first_failure;
  // Handshake durations in µs.
  std::uint64_t p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;
  double mean = 0;
};

struct Summary {
  std::uint64_t operations = 0;
  std::uint64_t successes = 0;
  std::uint64_t errors = 0;
  std::array<std::uint64_t, kErrorKinds> errors_by_kind{};
  int first_other_errno = 0;
  std::uint64_t resets_after_reply = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  double elapsed_seconds = 0;
  double rate_per_second = 0;  // operations (successful or not) per second
  // Latency percentiles in µs.
  std::uint64_t p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;
  double mean = 0;
  // Successful operations that took 1 s or more: with short operations on
  // loopback, these are SYN retransmits after an accept-queue overflow.
  std::uint64_t over_1s = 0;
  // Successful operations by order of magnitude of their latency, with
  // the edges in kLatencyEdgesUs: below 1 ms, 1-10 ms, 10-100 ms, 0.1-1 s,
  // 1-3 s, 3 s and more. SYN retransmits land past 1 s and 3 s.
  std::array<std::uint64_t, 6> latency_buckets{};
  double sent_bits_per_second = 0;
  double received_bits_per_second = 0;
  // Server CPU time (µs) per operation; absent without --server-pid or
  // when no operation completed.
  std::optional<double> server_cpu_us_per_operation;
  std::optional<double> server_cpu_seconds;
  // The same for --upstream-pid.
  std::optional<double> upstream_cpu_us_per_operation;
  std::optional<double> upstream_cpu_seconds;
  TlsSummary tls;
};

inline constexpr std::array<std::uint64_t, 5> kLatencyEdgesUs = {1'000, 10'000, 100'000, 1'000'000,
                                                                 3'000'000};

Summary summarize(const Stats& stats, Duration elapsed,
                  std::optional<double> server_cpu_seconds = std::nullopt,
                  std::optional<double> upstream_cpu_seconds = std::nullopt) noexcept;

}  // namespace salam::bench
