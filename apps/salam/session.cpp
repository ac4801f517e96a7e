#include "session.hpp"

#include <chrono>

#include <salam/log.hpp>

namespace salam::daemon {

namespace {

// Who the client is, for logs: its address, or the socket path for a
// Unix listener.
void append_client(fmt::memory_buffer& out, const Connection& client,
                   const ListenerRuntime& listener) {
  if (listener.is_unix) {
    out.append(std::string_view(listener.config.address));
  } else {
    format_address(out, client.peer());
  }
}

void log_connected(const Connection& client, const ListenerRuntime& listener) {
  if (!listener.log_connections || !log::enabled(log::Level::info)) return;

  fmt::memory_buffer who;
  append_client(who, client, listener);
  const std::string_view who_text(who.data(), who.size());
  if (log::settings().format == log::Format::json) {
    log::json_event(log::Level::info, "connected", [&](fmt::memory_buffer& out) {
      log::append_json_field(out, "client", who_text);
      log::append_json_field(out, "listener", listener.config.address);
      log::append_json_field(out, "service", listener.config.service);
    });
  } else {
    log::info("client {} connected", who_text);
  }
}

void log_closed(const Connection& client, const ListenerRuntime& listener, CloseReason reason,
                Duration lasted) {
  if (!listener.log_connections || !log::enabled(log::Level::info)) return;

  fmt::memory_buffer who;
  append_client(who, client, listener);
  const std::string_view who_text(who.data(), who.size());
  const double milliseconds = std::chrono::duration<double, std::milli>(lasted).count();
  if (log::settings().format == log::Format::json) {
    log::json_event(log::Level::info, "closed", [&](fmt::memory_buffer& out) {
      log::append_json_field(out, "client", who_text);
      log::append_json_field(out, "listener", listener.config.address);
      log::append_json_field(out, "service", listener.config.service);
      log::append_json_field(out, "bytes_in", client.bytes_in());
      log::append_json_field(out, "bytes_out", client.bytes_out());
      log::append_json_field(out, "duration_ms", milliseconds);
      log::append_json_field(out, "reason", to_string(reason));
    });
  } else {
    log::info("client {} closed: {}, {} bytes in, {} bytes out, {:.3f} ms", who_text,
              to_string(reason), client.bytes_in(), client.bytes_out(), milliseconds);
  }
}

}  // namespace

Task<> serve_session(Connection client, std::shared_ptr<const ListenerRuntime> listener) {
  const TimePoint started = Clock::now();
  // Learn the peer while the socket is open (it is logged after closing).
  if (listener->log_connections && !listener->is_unix) (void)client.peer();

  CloseReason reason;
  {
    ConnectionBudget::Ticket place = listener->budget->take();
    if (!place) {
      // Refused before a byte is read or written; the access record says why.
      reason = CloseReason::limit_conns;
      client.close();
    } else {
      log_connected(client, *listener);
      reason = co_await listener->service->serve(client, listener->config.options);
      client.close();
    }
  }
  log_closed(client, *listener, reason, Clock::now() - started);
}

}  // namespace salam::daemon
