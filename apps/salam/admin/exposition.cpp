#include "exposition.hpp"

#include <chrono>
#include <iterator>

#include <fmt/format.h>

namespace salam::daemon {

namespace {

class Writer {
 public:
  explicit Writer(bool openmetrics) : openmetrics_(openmetrics) {}

  // A metric family. For a counter, `name` is without its `_total`: in
  // OpenMetrics the family is named so, in 0.0.4 its one series is.
  void family(std::string_view name, std::string_view type, std::string_view help) {
    const bool counter = type == "counter";
    const std::string_view suffix = counter && !openmetrics_ ? "_total" : "";
    // Info families have the `_info` suffix on their samples only.
    std::string_view family_name = name;
    if (type == "info" && openmetrics_) family_name.remove_suffix(std::string_view("_info").size());
    const std::string_view shown_type = type == "info" && !openmetrics_ ? "gauge" : type;
    fmt::format_to(std::back_inserter(out_), "# HELP {}{} {}\n# TYPE {}{} {}\n", family_name,
                   suffix, help, family_name, suffix, shown_type);
  }

  template <typename Value>
  void sample(std::string_view name, std::string_view labels, Value value) {
    if (labels.empty()) {
      fmt::format_to(std::back_inserter(out_), "{} {}\n", name, value);
    } else {
      fmt::format_to(std::back_inserter(out_), "{}{{{}}} {}\n", name, labels, value);
    }
  }

  std::string finish() {
    if (openmetrics_) out_ += "# EOF\n";
    return std::move(out_);
  }

 private:
  bool openmetrics_;
  std::string out_;
};

// `name="value"`, escaped as both formats require.
std::string label(std::string_view name, std::string_view value) {
  std::string out(name);
  out += "=\"";
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

std::string join(std::string_view a, std::string_view b) {
  std::string out(a);
  out += ',';
  out += b;
  return out;
}

double seconds_since_epoch(std::chrono::system_clock::time_point time) {
  return std::chrono::duration<double>(time.time_since_epoch()).count();
}

void write_process(Writer& w, const StatusSnapshot& s) {
  w.family("salam_build_info", "info", "The running salam's version and event-loop backend.");
  w.sample("salam_build_info", join(label("version", s.version), label("backend", s.backend)), 1);
  w.family("salam_process_start_time_seconds", "gauge",
           "When the process started, in Unix seconds.");
  w.sample("salam_process_start_time_seconds", "", s.start_time);
  w.family("salam_shards", "gauge", "Event-loop threads (shards).");
  w.sample("salam_shards", "", s.shards);
  w.family("salam_draining", "gauge", "1 while the server drains to stop, 0 otherwise.");
  w.sample("salam_draining", "", s.phase == Phase::draining ? 1 : 0);
  w.family("salam_connections_limit", "gauge",
           "Connections allowed open at once over all listeners (max-connections).");
  w.sample("salam_connections_limit", "", s.limit);

  w.family("salam_shard_connections_accepted", "counter",
           "Connections accepted by each shard, over all listeners: how evenly the kernel spreads "
           "them.");
  for (std::size_t i = 0; i < s.accepted_per_shard.size(); ++i) {
    w.sample("salam_shard_connections_accepted_total", label("shard", std::to_string(i)),
             s.accepted_per_shard[i]);
  }
  w.family("salam_accept_errors", "counter",
           "Accepts that failed: descriptors (EMFILE, ENFILE) and memory (ENOBUFS, ENOMEM) pause "
           "accepting; other is anything else.");
  w.sample("salam_accept_errors_total", label("kind", "descriptors"), s.accept_errors.descriptors);
  w.sample("salam_accept_errors_total", label("kind", "memory"), s.accept_errors.memory);
  w.sample("salam_accept_errors_total", label("kind", "other"), s.accept_errors.other);

  w.family("salam_log_lines_dropped", "counter",
           "Log lines dropped because the log's destination did not keep up.");
  w.sample("salam_log_lines_dropped_total", "", s.log_lines_dropped);
  w.family("salam_config_reloads", "counter", "Reloads asked for (SIGHUP).");
  w.sample("salam_config_reloads_total", "", s.reload.count);
  w.family("salam_config_reload_failures", "counter",
           "Reloads rejected; the running configuration stayed.");
  w.sample("salam_config_reload_failures_total", "", s.reload.failures);
  w.family("salam_config_last_reload_successful", "gauge",
           "1 if the last reload took (or there was none), 0 if it was rejected.");
  w.sample("salam_config_last_reload_successful", "", s.reload.last_successful ? 1 : 0);
  w.family("salam_config_last_reload_success_timestamp_seconds", "gauge",
           "When the configuration last took, in Unix seconds (the start, until a reload).");
  w.sample("salam_config_last_reload_success_timestamp_seconds", "", s.reload.last_success_time);
}

void write_listeners(Writer& w, const StatusSnapshot& s) {
  std::vector<std::string> labels;
  for (const auto& listener : s.listeners) {
    labels.push_back(
        join(label("listener", listener.info.address), label("service", listener.info.service)));
  }
  const auto each = [&](auto&& write) {
    for (std::size_t i = 0; i < s.listeners.size(); ++i)
      write(s.listeners[i], labels[i]);
  };

  w.family("salam_connections_accepted", "counter", "Connections accepted.");
  each([&](auto& l, auto& at) {
    w.sample("salam_connections_accepted_total", at, l.totals.accepted);
  });
  w.family("salam_connections_active", "gauge", "Connections open now.");
  each([&](auto& l, auto& at) { w.sample("salam_connections_active", at, l.totals.active); });
  w.family("salam_connections_closed", "counter",
           "Connections ended, by reason (every connection ends with exactly one).");
  each([&](auto& l, auto& at) {
    for (int r = 0; r < kCloseReasons; ++r) {
      w.sample("salam_connections_closed_total",
               join(at, label("reason", to_string(static_cast<CloseReason>(r)))),
               l.totals.closed[r]);
    }
  });
  w.family(
      "salam_connections_refused", "counter",
      "Connections refused before reaching their service, by reason (also counted as closed).");
  each([&](auto& l, auto& at) {
    for (int r = 0; r < kCloseReasons; ++r) {
      const auto reason = static_cast<CloseReason>(r);
      if (!may_refuse(reason)) continue;
      w.sample("salam_connections_refused_total", join(at, label("reason", to_string(reason))),
               l.totals.refused[r]);
    }
  });
  w.family("salam_bytes_received", "counter", "Bytes received from clients, counted as each ends.");
  each([&](auto& l, auto& at) {
    w.sample("salam_bytes_received_total", at, l.totals.bytes_received);
  });
  w.family("salam_bytes_sent", "counter", "Bytes sent to clients, counted as each ends.");
  each([&](auto& l, auto& at) { w.sample("salam_bytes_sent_total", at, l.totals.bytes_sent); });

  w.family("salam_connection_duration_seconds", "histogram",
           "How long connections lasted, from accept to close.");
  each([&](auto& l, auto& at) {
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < kDurationBuckets.size(); ++b) {
      cumulative += l.totals.duration[b];
      w.sample("salam_connection_duration_seconds_bucket",
               join(at, label("le", fmt::format("{}", kDurationBuckets[b]))), cumulative);
    }
    cumulative += l.totals.duration.back();
    w.sample("salam_connection_duration_seconds_bucket", join(at, label("le", "+Inf")), cumulative);
    w.sample("salam_connection_duration_seconds_sum", at, l.totals.duration_seconds);
    w.sample("salam_connection_duration_seconds_count", at, cumulative);
  });

  bool any_tls = false;
  for (const auto& listener : s.listeners)
    any_tls = any_tls || listener.info.tls;
  if (!any_tls) return;
  const auto each_tls = [&](auto&& write) {
    for (std::size_t i = 0; i < s.listeners.size(); ++i)
      if (s.listeners[i].info.tls) write(s.listeners[i], labels[i]);
  };
  w.family("salam_tls_handshakes", "counter", "TLS handshakes completed, full or resumed.");
  each_tls([&](auto& l, auto& at) {
    w.sample("salam_tls_handshakes_total", join(at, label("kind", "full")), l.totals.tls_full);
    w.sample("salam_tls_handshakes_total", join(at, label("kind", "resumed")),
             l.totals.tls_resumed);
  });
  w.family("salam_tls_handshake_failures", "counter",
           "TLS handshakes that failed or timed out (refused as tls_error or timeout_tls).");
  each_tls([&](auto& l, auto& at) {
    w.sample("salam_tls_handshake_failures_total", at,
             l.totals.refused[static_cast<int>(CloseReason::tls_error)] +
                 l.totals.refused[static_cast<int>(CloseReason::timeout_tls)]);
  });
  w.family("salam_tls_certificate_expiry_timestamp_seconds", "gauge",
           "When each certificate (or the first of its chain to do so) expires, in Unix seconds.");
  each_tls([&](auto& l, auto& at) {
    for (const auto& certificate : l.info.certificates) {
      w.sample("salam_tls_certificate_expiry_timestamp_seconds",
               join(at, label("certificate", certificate.origin)),
               seconds_since_epoch(certificate.not_after));
    }
  });
}

}  // namespace

bool wants_openmetrics(std::string_view accept) noexcept {
  return accept.find("application/openmetrics-text") != std::string_view::npos;
}

std::string render_metrics(const StatusSnapshot& status, bool openmetrics) {
  Writer writer(openmetrics);
  write_process(writer, status);
  write_listeners(writer, status);
  return writer.finish();
}

}  // namespace salam::daemon
