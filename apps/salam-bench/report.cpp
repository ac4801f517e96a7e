#include "report.hpp"

#include <cstring>
#include <optional>

#include <fmt/format.h>

namespace salam::bench {

namespace {

bool is_stream(Workload workload) noexcept {
  return workload == Workload::echo || workload == Workload::discard;
}

std::optional<double> rss_per_connection_bytes(const RunResult& run) {
  if (!run.server_rss_before_kib || !run.server_rss_held_kib || run.most_held == 0) {
    return std::nullopt;
  }
  const double delta_kib = static_cast<double>(*run.server_rss_held_kib) -
                           static_cast<double>(*run.server_rss_before_kib);
  return delta_kib * 1024 / static_cast<double>(run.most_held);
}

void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
    } else {
      out += c;
    }
  }
  out += '"';
}

template <typename T>
void append_optional(std::string& out, std::string_view key, const std::optional<T>& value) {
  if (value) out += fmt::format(",\"{}\":{}", key, *value);
}

// With --tls-resume: handshakes that should have resumed and did not. The
// server refused the session offered, or the previous connection brought
// none; each worker's first handshake has none to offer and is not missed.
std::uint64_t missed_resumptions(const Options& options, const TlsSummary& tls) {
  if (!options.tls_resume) return 0;
  const std::uint64_t refused = tls.offered - tls.resumed;
  const std::uint64_t not_offered = tls.handshakes - tls.offered;
  return refused + (not_offered > options.concurrency ? not_offered - options.concurrency : 0);
}

void append_tls_text(std::string& out, const Options& options, const TlsSummary& tls) {
  out += fmt::format("tls          {} {}, server {}", tls.version.empty() ? "-" : tls.version,
                     tls.cipher, options.tls_ca_file.empty() ? "not verified" : "verified");
  if (!options.tls_server_name.empty()) out += fmt::format(", SNI {}", options.tls_server_name);
  out += '\n';
  out += fmt::format("handshakes   {}: full {}, resumed {}", tls.handshakes, tls.full, tls.resumed);
  if (options.tls_resume) {
    out += fmt::format(" ({} of {} sessions offered were resumed)", tls.resumed, tls.offered);
  }
  out += '\n';
  out += fmt::format("handshake µs p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {:.1f})\n",
                     tls.p50, tls.p90, tls.p99, tls.p999, tls.max, tls.mean);
  const std::uint64_t missed = missed_resumptions(options, tls);
  if (missed > 0) {
    out += fmt::format(
        "resumption   FAILED for {} handshakes: {} offered sessions refused, {} handshakes had "
        "none to offer (the connection before brought no ticket)\n",
        missed, tls.offered - tls.resumed, tls.handshakes - tls.offered);
  }
}

void append_tls_json(std::string& out, const Options& options, const TlsSummary& tls) {
  out += ",\"tls\":{\"version\":";
  append_json_string(out, tls.version);
  out += ",\"cipher\":";
  append_json_string(out, tls.cipher);
  out += ",\"server_name\":";
  append_json_string(out, options.tls_server_name);
  out += fmt::format(",\"verified\":{},\"resume\":{}", !options.tls_ca_file.empty(),
                     options.tls_resume);
  out += fmt::format(
      ",\"handshakes\":{},\"full\":{},\"resumed\":{},\"resume_offered\":{},"
      "\"resume_refused\":{},\"no_session_offered\":{},\"resumption_missed\":{}",
      tls.handshakes, tls.full, tls.resumed, tls.offered, tls.offered - tls.resumed,
      tls.handshakes - tls.offered, missed_resumptions(options, tls));
  out += fmt::format(
      ",\"handshake_us\":{{\"p50\":{},\"p90\":{},\"p99\":{},\"p99_9\":{},\"max\":{},"
      "\"mean\":{:.3f}}}",
      tls.p50, tls.p90, tls.p99, tls.p999, tls.max, tls.mean);
  if (!tls.first_failure.empty()) {
    out += ",\"first_failure\":";
    append_json_string(out, tls.first_failure);
  }
  out += '}';
}

}  // namespace

std::string format_text(const Options& options, const RunResult& run, const Summary& summary) {
  std::string out = fmt::format("{} against {}: {} connection{}, {} thread{} ({}), {}\n",
                                to_string(options.workload), options.target.to_string(),
                                options.concurrency, options.concurrency == 1 ? "" : "s",
                                options.threads, options.threads == 1 ? "" : "s",
                                to_string(run.backend), format_duration(run.elapsed));
  out += fmt::format("operations   {} in {:.2f} s: {:.0f}/s\n", summary.operations,
                     summary.elapsed_seconds, summary.rate_per_second);
  out += fmt::format("successes    {}\n", summary.successes);
  out += fmt::format("errors       {} (", summary.errors);
  for (std::size_t i = 0; i < kErrorKinds; ++i) {
    const auto kind = static_cast<ErrorKind>(i);
    if (kind == ErrorKind::tls && !options.tls) continue;
    out += fmt::format("{}{} {}", i == 0 ? "" : ", ", to_string(kind), summary.errors_by_kind[i]);
  }
  out += ")\n";
  if (!summary.tls.first_failure.empty()) {
    out += fmt::format("             first TLS error: {}\n", summary.tls.first_failure);
  }
  if (summary.resets_after_reply != 0) {
    out += fmt::format(
        "             {} of the resets came after the whole reply (the server closed without "
        "reading the request)\n",
        summary.resets_after_reply);
  }
  if (summary.first_other_errno != 0) {
    out += fmt::format("             first other error: {}\n",
                       std::strerror(summary.first_other_errno));
  }
  out +=
      fmt::format("latency µs   p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {:.1f})\n",
                  summary.p50, summary.p90, summary.p99, summary.p999, summary.max, summary.mean);
  out += fmt::format("1 s or more  {}{}\n", summary.over_1s,
                     summary.over_1s > 0 ? " (SYN retransmits: the accept queue overflowed?)" : "");
  if (options.workload == Workload::burst || summary.over_1s > 0) {
    const auto& b = summary.latency_buckets;
    out += fmt::format("distribution <1ms {}  1-10ms {}  10-100ms {}  0.1-1s {}  1-3s {}  3s+ {}\n",
                       b[0], b[1], b[2], b[3], b[4], b[5]);
  }
  if (summary.server_cpu_us_per_operation) {
    out += fmt::format("server CPU   {:.1f} µs per operation ({:.2f} s in all)\n",
                       *summary.server_cpu_us_per_operation, *summary.server_cpu_seconds);
  }
  if (summary.upstream_cpu_us_per_operation) {
    out += fmt::format("upstream CPU {:.1f} µs per operation ({:.2f} s in all)\n",
                       *summary.upstream_cpu_us_per_operation, *summary.upstream_cpu_seconds);
  }
  if (run.server_threads.size() > 1) {
    out += "server threads";
    for (const ThreadCpu& thread : run.server_threads) {
      const double share = *summary.server_cpu_seconds > 0
                               ? thread.cpu_seconds / *summary.server_cpu_seconds * 100
                               : 0;
      out += fmt::format("  {} {:.2f} s ({:.0f}%)", thread.name, thread.cpu_seconds, share);
    }
    out += '\n';
  }
  if (is_stream(options.workload)) {
    out += fmt::format("throughput   sent {:.2f} Gbit/s, received {:.2f} Gbit/s\n",
                       summary.sent_bits_per_second / 1e9, summary.received_bits_per_second / 1e9);
  }
  if (options.workload == Workload::hold) {
    out += fmt::format("held         {} of {} to the end (at most {} at once)", summary.successes,
                       options.concurrency, run.most_held);
    if (auto per_connection = rss_per_connection_bytes(run)) {
      out += fmt::format("; server RSS {:+.0f} bytes per connection", *per_connection);
    }
    out += '\n';
  }
  if (options.tls) append_tls_text(out, options, summary.tls);
  return out;
}

std::string format_json(const Options& options, const RunResult& run, const Summary& summary) {
  std::string out = "{\"workload\":";
  append_json_string(out, to_string(options.workload));
  out += ",\"target\":";
  append_json_string(out, options.target.to_string());
  out += ",\"backend\":";
  append_json_string(out, to_string(run.backend));
  out += fmt::format(",\"concurrency\":{},\"threads\":{},\"size\":{}", options.concurrency,
                     options.threads, options.payload_size());
  out += fmt::format(",\"elapsed_s\":{:.6f},\"operations\":{},\"successes\":{}",
                     summary.elapsed_seconds, summary.operations, summary.successes);
  out += fmt::format(",\"errors\":{{\"total\":{}", summary.errors);
  for (std::size_t i = 0; i < kErrorKinds; ++i) {
    out +=
        fmt::format(",\"{}\":{}", to_string(static_cast<ErrorKind>(i)), summary.errors_by_kind[i]);
  }
  out += fmt::format(",\"reset_after_reply\":{}}}", summary.resets_after_reply);
  if (summary.first_other_errno != 0) {
    out += ",\"first_other_error\":";
    append_json_string(out, std::strerror(summary.first_other_errno));
  }
  out += fmt::format(",\"rate_per_s\":{:.3f}", summary.rate_per_second);
  out += fmt::format(
      ",\"latency_us\":{{\"p50\":{},\"p90\":{},\"p99\":{},\"p99_9\":{},\"max\":{},\"mean\":{:.3f}}"
      "}",
      summary.p50, summary.p90, summary.p99, summary.p999, summary.max, summary.mean);
  out += fmt::format(",\"over_1s\":{}", summary.over_1s);
  out += fmt::format(
      ",\"latency_buckets\":{{\"lt_1ms\":{},\"1_10ms\":{},\"10_100ms\":{},\"100ms_1s\":{},"
      "\"1_3s\":{},\"ge_3s\":{}}}",
      summary.latency_buckets[0], summary.latency_buckets[1], summary.latency_buckets[2],
      summary.latency_buckets[3], summary.latency_buckets[4], summary.latency_buckets[5]);
  out += fmt::format(",\"bytes_sent\":{},\"bytes_received\":{}", summary.bytes_sent,
                     summary.bytes_received);
  out += fmt::format(",\"sent_gbit_per_s\":{:.4f},\"received_gbit_per_s\":{:.4f}",
                     summary.sent_bits_per_second / 1e9, summary.received_bits_per_second / 1e9);
  append_optional(out, "server_cpu_s", summary.server_cpu_seconds);
  append_optional(out, "server_cpu_us_per_op", summary.server_cpu_us_per_operation);
  append_optional(out, "upstream_cpu_s", summary.upstream_cpu_seconds);
  append_optional(out, "upstream_cpu_us_per_op", summary.upstream_cpu_us_per_operation);
  if (!run.server_threads.empty()) {
    out += ",\"server_threads\":[";
    for (std::size_t i = 0; i < run.server_threads.size(); ++i) {
      out += i == 0 ? "{\"name\":" : ",{\"name\":";
      append_json_string(out, run.server_threads[i].name);
      out += fmt::format(",\"cpu_s\":{:.3f}}}", run.server_threads[i].cpu_seconds);
    }
    out += ']';
  }
  if (options.workload == Workload::hold) {
    out += fmt::format(",\"held\":{},\"most_held\":{}", summary.successes, run.most_held);
    append_optional(out, "server_rss_before_kib", run.server_rss_before_kib);
    append_optional(out, "server_rss_held_kib", run.server_rss_held_kib);
    append_optional(out, "server_rss_per_connection_bytes", rss_per_connection_bytes(run));
  }
  if (options.tls) append_tls_json(out, options, summary.tls);
  out += "}\n";
  return out;
}

}  // namespace salam::bench
