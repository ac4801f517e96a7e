#include "stats.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <numeric>

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
    case ErrorKind::other:
      return "other";
  }
  return "other";
}

ErrorKind classify(std::error_code error) noexcept {
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

void Stats::record_error(std::error_code error) noexcept {
  const ErrorKind kind = classify(error);
  if (kind == ErrorKind::other && first_other_errno == 0) first_other_errno = error.value();
  record_error(kind);
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
}

Summary summarize(const Stats& stats, Duration elapsed,
                  std::optional<double> server_cpu_seconds) noexcept {
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
  return summary;
}

}  // namespace salam::bench
