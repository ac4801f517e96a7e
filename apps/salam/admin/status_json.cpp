#include "status_json.hpp"

#include <fmt/format.h>

#include <salam/log.hpp>

namespace salam::daemon {

namespace {

// A JSON object or array under construction: commas are its business.
class Json {
 public:
  explicit Json(fmt::memory_buffer& out) : out_(out) {}

  Json& key(std::string_view name) {
    string(name);
    out_.push_back(':');
    fresh_ = true;
    return *this;
  }
  void string(std::string_view text) {
    comma();
    out_.push_back('"');
    log::append_json_escaped(out_, text);
    out_.push_back('"');
  }
  void number(std::uint64_t value) {
    comma();
    fmt::format_to(fmt::appender(out_), "{}", value);
  }
  void number(double value) {
    comma();
    fmt::format_to(fmt::appender(out_), "{:.3f}", value);
  }
  void boolean(bool value) {
    comma();
    out_.append(std::string_view(value ? "true" : "false"));
  }
  void null() {
    comma();
    out_.append(std::string_view("null"));
  }
  template <typename Body>
  void object(Body&& body) {
    open('{', '}', body);
  }
  template <typename Body>
  void array(Body&& body) {
    open('[', ']', body);
  }

 private:
  void comma() {
    if (!fresh_) out_.push_back(',');
    fresh_ = false;
  }
  template <typename Body>
  void open(char first, char last, Body& body) {
    comma();
    out_.push_back(first);
    fresh_ = true;
    body();
    out_.push_back(last);
    fresh_ = false;
  }

  fmt::memory_buffer& out_;
  bool fresh_ = true;
};

void counts(Json& j, const std::array<std::uint64_t, kCloseReasons>& values, bool refusals) {
  j.object([&] {
    for (int r = 0; r < kCloseReasons; ++r) {
      const auto reason = static_cast<CloseReason>(r);
      if (refusals && !may_refuse(reason)) continue;
      j.key(to_string(reason)).number(values[r]);
    }
  });
}

void numbers(Json& j, const std::vector<std::uint64_t>& values) {
  j.array([&] {
    for (const auto value : values)
      j.number(value);
  });
}

void listener(Json& j, const StatusSnapshot::Listener& l, std::uint64_t limit) {
  const ListenerTotals& t = l.totals;
  j.object([&] {
    j.key("address").string(l.info.address);
    j.key("service").string(l.info.service);
    j.key("tls").boolean(l.info.tls);
    j.key("proxy").string(l.info.proxy);
    j.key("settings").object([&] {
      for (const auto& [name, value] : l.info.settings)
        j.key(name).string(value);
    });
    j.key("active").number(t.active);
    j.key("max").number(l.peak);
    j.key("limit").number(limit);
    j.key("accepted").number(t.accepted);
    j.key("accepted_per_shard");
    numbers(j, t.accepted_per_shard);
    j.key("bytes_received").number(t.bytes_received);
    j.key("bytes_sent").number(t.bytes_sent);
    j.key("closed");
    counts(j, t.closed, false);
    j.key("refused");
    counts(j, t.refused, true);
    j.key("tls_handshakes").object([&] {
      j.key("full").number(t.tls_full);
      j.key("resumed").number(t.tls_resumed);
    });
    j.key("certificates").array([&] {
      for (const auto& certificate : l.info.certificates) {
        j.object([&] {
          j.key("file").string(certificate.origin);
          j.key("not_after")
              .number(
                  std::chrono::duration<double>(certificate.not_after.time_since_epoch()).count());
        });
      }
    });
  });
}

}  // namespace

std::string render_status_json(const StatusSnapshot& s) {
  fmt::memory_buffer out;
  Json j(out);
  j.object([&] {
    j.key("version").string(s.version);
    j.key("backend").string(s.backend);
    j.key("pid").number(static_cast<std::uint64_t>(s.pid));
    j.key("shards").number(static_cast<std::uint64_t>(s.shards));
    j.key("start_time").number(s.start_time);
    j.key("now").number(s.now);
    j.key("uptime_seconds").number(s.now - s.start_time);
    j.key("state").string(to_string(s.phase));
    j.key("ready").boolean(s.phase == Phase::running);
    j.key("connections").object([&] {
      j.key("active").number(s.active);
      j.key("max").number(s.peak);
      j.key("limit").number(s.limit);
    });
    j.key("accepted_per_shard");
    numbers(j, s.accepted_per_shard);
    j.key("accept_errors").object([&] {
      j.key("descriptors").number(s.accept_errors.descriptors);
      j.key("memory").number(s.accept_errors.memory);
      j.key("other").number(s.accept_errors.other);
    });
    j.key("log_lines_dropped").number(s.log_lines_dropped);
    j.key("reload").object([&] {
      j.key("count").number(s.reload.count);
      j.key("failures").number(s.reload.failures);
      j.key("last_time");
      if (s.reload.count == 0) {
        j.null();
      } else {
        j.number(s.reload.last_time);
      }
      j.key("last_successful").boolean(s.reload.last_successful);
      j.key("last_success_time").number(s.reload.last_success_time);
      j.key("last_error").string(s.reload.last_error);
    });
    j.key("listeners").array([&] {
      for (const auto& l : s.listeners)
        listener(j, l, s.limit);
    });
  });
  out.push_back('\n');
  return fmt::to_string(out);
}

}  // namespace salam::daemon
