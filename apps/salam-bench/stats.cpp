#include "stats.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <numeric>

#include <salam/tls.hpp>

namespace salam::bench {

std::string_view to_string(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::refused:
      return "refused";
    case ErrorKind::reset:
      return "reset";
    case ErrorKind::timeout:
      return "timeout";
    case ErrorKind::wrong_reply:
      return "wrong_reply";
    case ErrorKind::tls:
      return "tls";
    case ErrorKind::other:
      return "other";
  }
  return "other";
}

ErrorKind classify(std::error_code error) noexcept {
  if (error == tls::tls_failure()) return ErrorKind::tls;
  if (error.category() != std::generic_category() && error.category() != std::system_category()) {
    return ErrorKind::other;
  }
  switch (error.value()) {
    case ECONNREFUSED:
      return ErrorKind::refused;
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED:
      return ErrorKind::reset;
    case ETIMEDOUT:
      return ErrorKind::timeout;
    default:
      return ErrorKind::other;
  }
}

void Stats::record_success(Duration latency) noexcept {
  ++successes;
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(latency).count();
  latency_us.record(static_cast<std::uint64_t>(std::max<std::int64_t>(micros, 0)));
}

void Stats::record_error(std::error_code error, std::string_view tls_detail) noexcept {
  const ErrorKind kind = classify(error);
  // Only an errno can be named with strerror() in the report.
  const bool is_errno =
      error.category() == std::generic_category() || error.category() == std::system_category();
  if (kind == ErrorKind::other && first_other_errno == 0 && is_errno) {
    first_other_errno = error.value();
  }
  if (kind == ErrorKind::tls && tls.first_failure.empty()) {
    tls.first_failure = tls_detail.empty() ? std::string_view("TLS failure") : tls_detail;
  }
  record_error(kind);
}

void Stats::note_negotiated(std::string_view version, std::string_view cipher) noexcept {
  if (tls.version.empty()) {
    tls.version = version;
    tls.cipher = cipher;
  }
}

void Stats::record_handshake(bool resumed, bool offered, Duration took) noexcept {
  ++(resumed ? tls.resumed : tls.full);
  if (offered) ++tls.offered;
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(took).count();
  tls.handshake_us.record(static_cast<std::uint64_t>(std::max<std::int64_t>(micros, 0)));
}

void TlsStats::merge(const TlsStats& other) noexcept {
  full += other.full;
  resumed += other.resumed;
  offered += other.offered;
  if (version.empty()) {
    version = other.version;
    cipher = other.cipher;
  }
  if (first_failure.empty()) first_failure = other.first_failure;
  handshake_us.merge(other.handshake_us);
}

std::uint64_t Stats::error_count() const noexcept {
  return std::accumulate(errors.begin(), errors.end(), std::uint64_t{0});
}

void Stats::merge(const Stats& other) noexcept {
  successes += other.successes;
  for (std::size_t i = 0; i < kErrorKinds; ++i)
    errors[i] += other.errors[i];
  if (first_other_errno == 0) first_other_errno = other.first_other_errno;
  resets_after_reply += other.resets_after_reply;
  bytes_sent += other.bytes_sent;
  bytes_received += other.bytes_received;
  latency_us.merge(other.latency_us);
  tls.merge(other.tls);
}

namespace {

TlsSummary summarize_tls(const TlsStats& tls) noexcept {
  TlsSummary summary;
  summary.handshakes = tls.handshakes();
  summary.full = tls.full;
  summary.resumed = tls.resumed;
  summary.offered = tls.offered;
  summary.version = tls.version;
  summary.cipher = tls.cipher;
  summary.first_failure = tls.first_failure;
  const Histogram& took = tls.handshake_us;
  summary.p50 = took.percentile(50);
  summary.p90 = took.percentile(90);
  summary.p99 = took.percentile(99);
  summary.p999 = took.percentile(99.9);
  summary.max = took.max();
  summary.mean = took.mean();
  return summary;
}

}  // namespace

Summary summarize(const Stats& stats, Duration elapsed, std::optional<double> server_cpu_seconds,
                  std::optional<double> upstream_cpu_seconds) noexcept {
  Summary summary;
  summary.operations = stats.operations();
  summary.successes = stats.successes;
  summary.errors = stats.error_count();
  summary.errors_by_kind = stats.errors;
  summary.first_other_errno = stats.first_other_errno;
  summary.resets_after_reply = stats.resets_after_reply;
  summary.bytes_sent = stats.bytes_sent;
  summary.bytes_received = stats.bytes_received;
  summary.elapsed_seconds = std::chrono::duration<double>(elapsed).count();
  const double seconds = summary.elapsed_seconds;
  if (seconds > 0) {
    summary.rate_per_second = static_cast<double>(summary.operations) / seconds;
    summary.sent_bits_per_second = static_cast<double>(stats.bytes_sent) * 8 / seconds;
    summary.received_bits_per_second = static_cast<double>(stats.bytes_received) * 8 / seconds;
  }
  const Histogram& latency = stats.latency_us;
  summary.p50 = latency.percentile(50);
  summary.p90 = latency.percentile(90);
  summary.p99 = latency.percentile(99);
  summary.p999 = latency.percentile(99.9);
  summary.max = latency.max();
  summary.mean = latency.mean();
  summary.over_1s = latency.count_at_or_above(1'000'000);
  std::uint64_t above = latency.count();
  for (std::size_t i = 0; i < kLatencyEdgesUs.size(); ++i) {
    const std::uint64_t next = latency.count_at_or_above(kLatencyEdgesUs[i]);
    summary.latency_buckets[i] = above - next;
    above = next;
  }
  summary.latency_buckets.back() = above;
  if (server_cpu_seconds) {
    summary.server_cpu_seconds = *server_cpu_seconds;
    if (summary.operations > 0) {
      summary.server_cpu_us_per_operation =
          *server_cpu_seconds * 1e6 / static_cast<double>(summary.operations);
    }
  }
  if (upstream_cpu_seconds) {
    summary.upstream_cpu_seconds = *upstream_cpu_seconds;
    if (summary.operations > 0) {
      summary.upstream_cpu_us_per_operation =
          *upstream_cpu_seconds * 1e6 / static_cast<double>(summary.operations);
    }
  }
  summary.tls = summarize_tls(stats.tls);
  return summary;
}

}  // namespace salam::bench
