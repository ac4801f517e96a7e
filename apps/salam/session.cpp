#include "session.hpp"

#include <chrono>
#include <optional>
#include <vector>

#include <salam/log.hpp>
#include <salam/printable.hpp>
#include <salam/proxy_protocol.hpp>
#include <salam/tls.hpp>

namespace salam::daemon {

namespace {

// What a session learns along the way. Every idle connection holds one in
// its frame: keep it small (the TCP peer's address is cached by the
// Connection, not copied here).
struct Session {
  TimePoint started = Clock::now();
  std::optional<SocketAddress> proxied;   // the client a PROXY header named
  std::string_view detail;                // why, for a refusal (a static string)
  std::unique_ptr<tls::SessionInfo> tls;  // what the handshake established
};

double milliseconds_of(Duration duration) {
  return std::chrono::duration<double, std::milli>(duration).count();
}

void append_tls_text(fmt::memory_buffer& out, const tls::SessionInfo& tls) {
  fmt::format_to(std::back_inserter(out), ", {} {}", tls.version, tls.cipher);
  if (!tls.server_name.empty()) fmt::format_to(std::back_inserter(out), " sni={}", tls.server_name);
  if (!tls.alpn.empty()) fmt::format_to(std::back_inserter(out), " alpn={}", printable(tls.alpn));
  if (tls.resumed) out.append(std::string_view(" resumed"));
  if (!tls.peer_subject.empty()) {
    fmt::format_to(std::back_inserter(out), " client=\"{}\"", printable(tls.peer_subject, 256));
  }
  fmt::format_to(std::back_inserter(out), " handshake {:.3f} ms", milliseconds_of(tls.duration));
}

void append_tls_json(fmt::memory_buffer& out, const tls::SessionInfo& tls) {
  log::append_json_field(out, "tls_version", tls.version);
  log::append_json_field(out, "tls_cipher", tls.cipher);
  if (!tls.server_name.empty()) log::append_json_field(out, "tls_sni", tls.server_name);
  if (!tls.alpn.empty()) log::append_json_field(out, "tls_alpn", tls.alpn);
  log::append_json_flag(out, "tls_resumed", tls.resumed);
  if (!tls.peer_subject.empty()) log::append_json_field(out, "tls_client", tls.peer_subject);
  log::append_json_field(out, "tls_handshake_ms", milliseconds_of(tls.duration));
}

// Who the client is: the PROXY header's client, or the TCP peer; nobody
// on a Unix socket.
SessionFacts facts_of(const Session& session, const ListenerRuntime& listener) {
  return {session.proxied ? &*session.proxied : nullptr, session.tls.get(), listener.config.address,
          listener.is_unix};
}

std::optional<SocketAddress> client_of(const Connection& connection, const Session& session,
                                       const ListenerRuntime& listener) {
  return facts_of(session, listener).client(connection);
}

void append_who(fmt::memory_buffer& out, const std::optional<SocketAddress>& address,
                const ListenerRuntime& listener) {
  if (address) {
    format_address(out, *address);
  } else {
    out.append(std::string_view(listener.config.address));  // unix:/path
  }
}

void log_connected(const Connection& client, const Session& session,
                   const ListenerRuntime& listener) {
  if (!listener.log_connections || !log::enabled(log::Level::info)) return;
  fmt::memory_buffer who;
  append_who(who, client_of(client, session, listener), listener);
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

void write_record(const Connection& client, const Session& session, const ListenerRuntime& listener,
                  CloseReason reason) {
  fmt::memory_buffer who;
  append_who(who, client_of(client, session, listener), listener);
  const std::string_view who_text(who.data(), who.size());
  fmt::memory_buffer via;
  if (session.proxied && !listener.is_unix) format_address(via, client.peer());
  const std::string_view via_text(via.data(), via.size());
  const double milliseconds =
      std::chrono::duration<double, std::milli>(Clock::now() - session.started).count();
  if (log::settings().format == log::Format::json) {
    log::json_event(
        log::Level::info, "closed",
        [&](fmt::memory_buffer& out) {
          log::append_json_field(out, "client", who_text);
          if (!via_text.empty()) log::append_json_field(out, "peer", via_text);
          log::append_json_field(out, "listener", listener.config.address);
          log::append_json_field(out, "service", listener.config.service);
          log::append_json_field(out, "bytes_in", client.bytes_in());
          log::append_json_field(out, "bytes_out", client.bytes_out());
          log::append_json_field(out, "duration_ms", milliseconds);
          log::append_json_field(out, "reason", to_string(reason));
          if (!session.detail.empty()) log::append_json_field(out, "detail", session.detail);
          if (session.tls) append_tls_json(out, *session.tls);
        },
        log::Stream::access);
  } else {
    fmt::memory_buffer tls_text;
    if (session.tls) append_tls_text(tls_text, *session.tls);
    log::access_line("client {}{}{} closed: {}{}{}{}, {} bytes in, {} bytes out, {:.3f} ms{}",
                     who_text, via_text.empty() ? "" : " via ", via_text, to_string(reason),
                     session.detail.empty() ? "" : " (", session.detail,
                     session.detail.empty() ? "" : ")", client.bytes_in(), client.bytes_out(),
                     milliseconds, std::string_view(tls_text.data(), tls_text.size()));
  }
}

// A failure on the server's side is a problem for the operator: a warning,
// whatever --quiet says, at a bounded rate.
void warn_of_server_error(const Session& session, const ListenerRuntime& listener) {
  std::uint64_t suppressed = 0;
  if (!listener.server_errors.allow(Clock::now(), suppressed)) return;
  log::warning(
      "{}: a connection failed on the server's side ({}){}", listener.config.address,
      session.detail.empty() ? std::string_view("no error code") : session.detail,
      suppressed == 0 ? std::string() : fmt::format("; {} more not logged one by one", suppressed));
}

void record(const Connection& client, const Session& session, const ListenerRuntime& listener,
            CloseReason reason, bool refused) {
  listener.counters->count_end(
      reason, refused, client.bytes_in(), client.bytes_out(),
      std::chrono::duration<double>(Clock::now() - session.started).count());
  if (session.tls)
    (session.tls->resumed ? listener.counters->tls_resumed : listener.counters->tls_full).add();
  if (reason == CloseReason::server_error) warn_of_server_error(session, listener);
  if (refused) {
    std::uint64_t suppressed = 0;
    if (!listener.refusal_records.allow(Clock::now(), suppressed)) return;
    if (suppressed > 0) {
      log::warning("{}: {} refused connection(s) not logged one by one (too many at once)",
                   listener.config.address, suppressed);
    }
  } else if (!listener.log_connections) {
    return;
  }
  if (log::enabled(log::Level::info)) write_record(client, session, listener, reason);
}

// The ending's reason; a server_error's errno goes into the record's detail.
CloseReason noted(Ending ending, Session& session) {
  if (!ending.detail.empty() && session.detail.empty()) session.detail = ending.detail;
  if (ending.reason == CloseReason::server_error && ending.error != 0 && session.detail.empty()) {
    session.detail = errno_name(ending.error);
  }
  return ending.reason;
}

// Reads the PROXY header, if the listener wants one, and learns the real
// client from it. Returns a reason if the connection is refused.
Task<std::optional<CloseReason>> accept_proxy_header(Connection& client,
                                                     const ListenerRuntime& listener,
                                                     Session& session) {
  const ProxyConfig& proxy = listener.config.proxy;
  // Only trusted balancers may say who the client is; from anyone else a
  // header is never applied.
  if (listener.is_unix || proxy.trusted_list->check(client.peer()) != Access::allow) {
    if (proxy.mode == ProxyMode::optional) co_return std::nullopt;  // a direct client
    session.detail = "untrusted peer";
    co_return CloseReason::proxy_error;
  }
  const Deadline deadline(proxy.timeout);
  std::vector<std::byte> received;
  for (;;) {
    auto input = co_await client.read(proxy::kDefaultMaxV2Length - received.size(), deadline);
    if (!input) {
      if (input.error() == timed_out()) co_return CloseReason::timeout_proxy;
      co_return noted(ending_for(input.error(), CloseReason::timeout_proxy), session);
    }
    if (input->empty()) {
      session.detail = "closed before the header ended";
      co_return CloseReason::proxy_error;
    }
    received.insert(received.end(), input->bytes().begin(), input->bytes().end());
    if (proxy.mode == ProxyMode::optional) {
      const auto detected = proxy::detect(received);
      if (detected == proxy::Detection::need_more) continue;
      if (detected == proxy::Detection::not_header) {
        client.unread(received);  // all of it is the client's
        co_return std::nullopt;
      }
    }
    const proxy::ParseResult parsed = proxy::parse(received);
    if (parsed.status == proxy::Status::incomplete) continue;
    if (parsed.status == proxy::Status::invalid) {
      session.detail = parsed.error;
      co_return CloseReason::proxy_error;
    }
    // LOCAL (a health check) and headers without addresses keep the peer.
    if (parsed.header.source) session.proxied = parsed.header.source->without_v4_mapping();
    client.unread(std::span(received).subspan(parsed.header.length));
    co_return std::nullopt;
  }
}

std::optional<CloseReason> check_client(const Connection& client, const ListenerRuntime& listener,
                                        const Session& session,
                                        std::unique_ptr<ClientLimits::Admission>& admission) {
  const auto& access = listener.config.access.list;
  if (!access && !listener.limits) return std::nullopt;
  const auto who = client_of(client, session, listener);
  if (!who) return std::nullopt;  // a Unix socket client: no address to judge
  if (access && access->check(*who) == Access::deny) return CloseReason::denied;
  if (listener.limits) {
    // On the heap: only listeners with limits pay for it in idle memory.
    admission =
        std::make_unique<ClientLimits::Admission>(listener.limits->admit(*who, Clock::now()));
    switch (admission->verdict()) {
      case ClientLimits::Verdict::admitted:
        break;
      case ClientLimits::Verdict::too_many_connections:
        return CloseReason::limit_conns;
      case ClientLimits::Verdict::too_fast:
        return CloseReason::limit_rate;
    }
  }
  return std::nullopt;
}

// The TLS phase: the handshake rate first (before any cryptography), then
// the handshake, within its own deadline.
Task<std::optional<CloseReason>> accept_tls(Connection& client, const ListenerRuntime& listener,
                                            Session& session) {
  if (listener.handshakes && !listener.handshakes->take(Clock::now())) {
    co_return CloseReason::limit_handshakes;
  }
  const TlsConfig& tls = listener.config.tls;
  tls::Handshake handshake =
      co_await tls::accept(client, tls.context, Deadline(tls.handshake_timeout));
  if (!handshake) {
    if (handshake.error == timed_out()) co_return CloseReason::timeout_tls;
    session.detail = handshake.detail;
    co_return noted(ending_for(handshake.error, CloseReason::timeout_tls), session);
  }
  session.tls = std::make_unique<tls::SessionInfo>(std::move(handshake.info));
  co_return std::nullopt;
}

// Its own coroutine, so that the session's frame — which every idle
// connection holds — does not carry a write's state for this rare case.
Task<> send_limit_message(Connection& client, const ListenerRuntime& listener) {
  co_await client.write_all(listener.limit_message, std::chrono::seconds(1));
}

// A timeout may have come from a cap of the whole connection rather than
// from the service's own deadline.
CloseReason refine(CloseReason reason, const Connection& client) {
  if (reason != CloseReason::timeout_first_byte && reason != CloseReason::timeout_idle &&
      reason != CloseReason::timeout_write) {
    return reason;
  }
  switch (client.expiry()) {
    case Connection::Expiry::lifetime:
      return CloseReason::timeout_lifetime;
    case Connection::Expiry::rate:
      return CloseReason::too_slow;
    case Connection::Expiry::none:
      break;
  }
  return reason;
}

}  // namespace

bool LineBudget::allow(TimePoint now, std::uint64_t& suppressed) noexcept {
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  last_ = now;
  tokens_ = std::min(kBurst, tokens_ + elapsed * kPerSecond);
  if (tokens_ < 1) {
    ++suppressed_;
    return false;
  }
  tokens_ -= 1;
  suppressed = std::exchange(suppressed_, 0);
  return true;
}

Task<> serve_session(Connection client, std::shared_ptr<const ListenerRuntime> listener) {
  const ListenerRuntime& l = *listener;
  l.counters->accepted.add();
  Session session;

  std::optional<CloseReason> refused;
  ConnectionBudget::Ticket place = l.budget->take();
  std::unique_ptr<ClientLimits::Admission> admission;
  if (!place) refused = CloseReason::limit_conns;
  if (!refused && l.config.proxy.mode != ProxyMode::off) {
    refused = co_await accept_proxy_header(client, l, session);
  }
  if (!refused) refused = check_client(client, l, session, admission);
  if (!refused && l.config.tls.context) refused = co_await accept_tls(client, l, session);

  CloseReason reason;
  if (refused) {
    reason = *refused;
    const bool by_limit = reason == CloseReason::limit_conns || reason == CloseReason::limit_rate;
    // Not on a TLS listener: before a handshake, a client expects none of it.
    if (by_limit && !l.limit_message.empty() && !l.config.tls.context) {
      co_await send_limit_message(client, l);
    }
  } else {
    if (l.config.max_lifetime > Duration::zero()) client.set_lifetime(l.config.max_lifetime);
    if (l.config.min_rate > 0) client.set_minimum_rate(l.config.min_rate, l.config.min_rate_grace);
    log_connected(client, session, l);
    const SessionFacts facts = facts_of(session, l);
    const Ending ending = co_await l.service->serve(client, l.config.options, facts);
    reason = refine(noted(ending, session), client);
    if (reason == CloseReason::tls_error) session.detail = tls::failure_detail(client);
  }
  // The peer's address costs a system call on io_uring (multishot accept
  // does not report it): it is asked for only when used, and the record
  // needs it after the socket is gone.
  if (!l.is_unix && (l.log_connections || refused)) (void)client.peer();
  // The close phase, the same for every service: the engine lingers if
  // input is left unread, so that an RST cannot destroy the reply. A
  // refused connection is closed at once: lingering would hold descriptors
  // that no limit counts, for clients the limits turned away.
  client.close(refused ? Connection::Linger::never : Connection::Linger::if_input_left);
  record(client, session, l, reason, refused.has_value());
}

}  // namespace salam::daemon
