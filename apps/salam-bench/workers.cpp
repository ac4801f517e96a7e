// The workers of each workload. See workload.hpp for why each is one
// coroutine with its loop inside.
#include <algorithm>
#include <array>
#include <cstring>
#include <span>

#include <salam/connection.hpp>
#include <salam/result.hpp>
#include <salam/tls.hpp>

#include "tls_client.hpp"
#include "workload.hpp"

namespace salam::bench {

namespace {

using Phase = ThreadContext::Phase;

// Echo payloads go out in pieces of at most this size, each read back
// before the next is sent: a client that sent a large payload whole before
// reading could deadlock with an echo server blocked writing to it.
constexpr std::size_t kEchoChunk = 64 * 1024;

bool same_bytes(std::span<const std::byte> a, std::string_view b) noexcept {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0;
}

// A failed read or write; over TLS the library says why (an empty reason
// on a plain connection, where it is never asked for).
void fail(ThreadContext* context, Phase phase, std::error_code error, Connection& connection) {
  context->failed(phase, error, error == tls::tls_failure() ? tls::failure_detail(connection) : "");
}

// greet, banner and burst: connect, send the message (not for banner),
// read until end of file, compare, close. A burst worker waits for the
// common instant and does one operation. Over TLS (kTls) the handshake
// comes first; the plain instantiation has no trace of it.
template <bool kTls>
Task<> greet_worker(ThreadContext* context, unsigned index) {
  const Options& options = context->options();
  Loop& loop = context->loop();
  const auto source = context->source_for(index);
  const bool send_message = options.workload != Workload::banner && !options.message.empty();
  const bool burst = options.workload == Workload::burst;
  const std::uint64_t operations = burst ? 1 : UINT64_MAX;
  // Room for the expected reply and more, so that a longer reply shows as
  // longer rather than as a match.
  std::vector<std::byte> reply(options.expect.size() + 64);
  [[maybe_unused]] TlsClient tls;
  if (burst) co_await loop.sleep_until(context->schedule().burst_at);

  for (std::uint64_t done = 0; done < operations; ++done) {
    const TimePoint started = Clock::now();
    const Phase phase = burst ? Phase::measure : context->next(started);
    if (phase == Phase::stop) break;
    const Deadline deadline(started + options.timeout);
    auto connection = co_await connect(loop, options.target, deadline, source);
    if (!connection) {
      context->failed(phase, connection.error());
      continue;
    }
    if constexpr (kTls) {
      if (!co_await tls.handshake(*context, *connection, phase, deadline)) continue;
    }
    if (send_message) {
      if (auto error = co_await connection->write_all(options.message, deadline)) {
        fail(context, phase, error, *connection);
        continue;
      }
    }
    if (options.half_close) {
      if (auto error = connection->shutdown_write()) {
        context->failed(phase, error);
        continue;
      }
    }
    std::size_t received = 0;
    std::error_code error;
    for (;;) {
      // Past the buffer's end, keep reading (over the tail) only to find
      // the end of file: the reply is too long to match anyway.
      std::span<std::byte> into(reply);
      if (received < reply.size()) into = into.subspan(received);
      auto count = co_await connection->read_some(into, deadline);
      if (!count) {
        error = count.error();
        break;
      }
      if (*count == 0) break;
      received += *count;
    }
    if constexpr (kTls) tls.keep_session(*context, *connection);
    const bool expected =
        received <= reply.size() && same_bytes(std::span(reply).first(received), options.expect);
    if (error) {
      if (expected && classify(error) == ErrorKind::reset) {
        context->reset_after_reply(phase);
      } else {
        fail(context, phase, error, *connection);
      }
      continue;
    }
    if (!expected) {
      context->failed(phase, ErrorKind::wrong_reply);
      continue;
    }
    context->count_bytes(phase, send_message ? options.message.size() : 0, received);
    context->succeeded(phase, started);
  }
}

// Opens the persistent connection of an echo or discard worker, with its
// TLS handshake if `tls`; a failure is the operation's. Called only when
// there is none, so the steady state allocates no frame for it.
Task<bool> reconnect(ThreadContext* context, std::optional<Connection>& connection, Phase phase,
                     Deadline deadline, std::optional<SocketAddress> source, TlsClient* tls) {
  auto connected = co_await connect(context->loop(), context->options().target, deadline, source);
  if (!connected) {
    context->failed(phase, connected.error());
    co_return false;
  }
  connection.emplace(std::move(*connected));
  if (tls != nullptr && !co_await tls->handshake(*context, *connection, phase, deadline)) {
    connection.reset();
    co_return false;
  }
  co_return true;
}

// Ends a persistent connection after a failure, keeping its TLS session
// for the next one.
void drop(ThreadContext* context, std::optional<Connection>& connection, TlsClient* tls) {
  if (tls != nullptr) tls->keep_session(*context, *connection);
  connection.reset();
}

// echo: on a persistent connection, send the payload and read it back. A
// failed round trip closes the connection; the next operation reconnects.
Task<> echo_worker(ThreadContext* context, unsigned index) {
  const Options& options = context->options();
  const auto source = context->source_for(index);
  const std::vector<std::byte>& payload = context->payload();
  const std::size_t chunk_size = std::min(payload.size(), kEchoChunk);
  std::vector<std::byte> echoed(chunk_size);
  std::optional<Connection> connection;
  TlsClient tls_client;
  TlsClient* const tls = options.tls ? &tls_client : nullptr;

  for (;;) {
    const TimePoint started = Clock::now();
    const Phase phase = context->next(started);
    if (phase == Phase::stop) break;
    const Deadline deadline(started + options.timeout);
    if (!connection && !co_await reconnect(context, connection, phase, deadline, source, tls)) {
      continue;
    }
    std::error_code error;
    bool same = true;
    for (std::size_t offset = 0; offset < payload.size() && !error && same; offset += chunk_size) {
      const auto sent =
          std::span(payload).subspan(offset, std::min(chunk_size, payload.size() - offset));
      error = co_await connection->write_all(sent, deadline);
      std::size_t got = 0;
      while (!error && same && got < sent.size()) {
        auto count = co_await connection->read_some(
            std::span(echoed).subspan(got, sent.size() - got), deadline);
        if (!count) {
          error = count.error();
        } else if (*count == 0) {
          same = false;  // end of file mid-echo: the reply was cut short
        } else {
          got += *count;
        }
      }
      if (!error && same) same = std::memcmp(echoed.data(), sent.data(), sent.size()) == 0;
    }
    if (error || !same) {
      if (error) {
        fail(context, phase, error, *connection);
      } else {
        context->failed(phase, ErrorKind::wrong_reply);
      }
      drop(context, connection, tls);
      continue;
    }
    context->count_bytes(phase, payload.size(), payload.size());
    context->succeeded(phase, started);
  }
}

// discard: on a persistent connection, write the payload again and again;
// an operation is one payload handed to the kernel.
Task<> discard_worker(ThreadContext* context, unsigned index) {
  const Options& options = context->options();
  const auto source = context->source_for(index);
  const std::vector<std::byte>& payload = context->payload();
  std::optional<Connection> connection;
  TlsClient tls_client;
  TlsClient* const tls = options.tls ? &tls_client : nullptr;

  for (;;) {
    const TimePoint started = Clock::now();
    const Phase phase = context->next(started);
    if (phase == Phase::stop) break;
    const Deadline deadline(started + options.timeout);
    if (!connection && !co_await reconnect(context, connection, phase, deadline, source, tls)) {
      continue;
    }
    if (auto error = co_await connection->write_all(payload, deadline)) {
      fail(context, phase, error, *connection);
      drop(context, connection, tls);
      continue;
    }
    context->count_bytes(phase, payload.size(), 0);
    context->succeeded(phase, started);
  }
  // A TLS connection ends with close_notify, when it is destroyed.
  if (connection && !tls) (void)connection->shutdown_write();
}

// hold: connect, then stay idle until the end of the run. The operation
// succeeds if the connection is still open then; its latency is the
// connect's. Bytes a server sends first are read and ignored; the server
// closing the connection counts as a reset.
Task<> hold_worker(ThreadContext* context, unsigned index) {
  const Options& options = context->options();
  if (options.connect_rate > 0) {
    // Connect at a steady pace: all at once, tens of thousands of SYNs
    // overflow any accept queue, and the run would measure SYN retransmits
    // instead of idle connections.
    const auto offset = std::chrono::duration_cast<Duration>(
        std::chrono::duration<double>(static_cast<double>(index) / options.connect_rate));
    co_await context->loop().sleep_until(context->schedule().measure_start + offset);
  }
  const TimePoint started = Clock::now();
  const Deadline deadline(started + options.timeout);
  auto connection =
      co_await connect(context->loop(), options.target, deadline, context->source_for(index));
  if (!connection) {
    context->failed(Phase::measure, connection.error());
    co_return;
  }
  if (options.tls) {
    TlsClient tls;
    if (!co_await tls.handshake(*context, *connection, Phase::measure, deadline)) co_return;
  }
  const TimePoint connected = Clock::now();
  context->hold_started();
  std::array<std::byte, 64> sink;
  std::error_code error;
  for (;;) {
    auto count = co_await connection->read_some(sink, Deadline(context->schedule().end));
    if (!count) {
      if (count.error() != timed_out()) error = count.error();
      break;
    }
    if (*count == 0) {
      error = std::make_error_code(std::errc::connection_reset);
      break;
    }
  }
  context->hold_ended();
  if (error) {
    fail(context, Phase::measure, error, *connection);
  } else {
    context->succeeded(Phase::measure, started, connected);
  }
}

// handshake (--tls only): connect, TLS handshake, close (close_notify):
// one handshake per operation, for their rate and latency. With
// --tls-resume under TLS 1.3 the ticket comes after the handshake, so the
// worker first reads once: until the server sends or closes, which it does
// after its tickets. A server that waits for the client's words instead
// makes that read time out: the workload wants one that speaks or closes
// first (a banner, or a close after the handshake).
Task<> handshake_worker(ThreadContext* context, unsigned index) {
  const Options& options = context->options();
  Loop& loop = context->loop();
  const auto source = context->source_for(index);
  TlsClient tls;
  std::array<std::byte, 256> sink;

  for (;;) {
    const TimePoint started = Clock::now();
    const Phase phase = context->next(started);
    if (phase == Phase::stop) break;
    const Deadline deadline(started + options.timeout);
    auto connection = co_await connect(loop, options.target, deadline, source);
    if (!connection) {
      context->failed(phase, connection.error());
      continue;
    }
    if (!co_await tls.handshake(*context, *connection, phase, deadline)) continue;
    if (tls.awaits_ticket(*context, *connection)) {
      // What ends the read does not matter (bytes, the end, a reset), but
      // for a server that neither speaks nor closes.
      auto count = co_await connection->read_some(sink, deadline);
      if (!count && count.error() == timed_out()) {
        context->failed(phase, count.error());
        continue;
      }
      tls.keep_session(*context, *connection);
    }
    context->succeeded(phase, started);
  }
}

}  // namespace

Task<> run_worker(ThreadContext* context, unsigned index) {
  const bool tls = context->options().tls;
  switch (context->options().workload) {
    case Workload::greet:
    case Workload::banner:
    case Workload::burst:
      return tls ? greet_worker<true>(context, index) : greet_worker<false>(context, index);
    case Workload::handshake:
      return handshake_worker(context, index);
    case Workload::echo:
      return echo_worker(context, index);
    case Workload::discard:
      return discard_worker(context, index);
    case Workload::hold:
      return hold_worker(context, index);
  }
  return greet_worker<false>(context, index);
}

}  // namespace salam::bench
