// chargen (RFC 864): send lines until the client closes, and throw away
// whatever the client sends meanwhile. Each line is 72 characters of the 95
// printable ASCII characters (space to '~') taken as a ring, plus CR LF;
// each line starts one character further along the ring, and the first one
// at '!', as in the RFC's example. The pattern repeats every 95 lines, so a
// precomputed block of whole periods is all that is ever sent.
//
// Sending and discarding run as two tasks of one scope, so that a client
// that writes without reading cannot stall the stream: when sending ends,
// it shuts reading down and the discarding task sees end of file.
#include <cerrno>
#include <string>

#include <salam/scope.hpp>

#include "service.hpp"

namespace salam::daemon {

namespace {

constexpr int kPrintable = 95;  // ' ' .. '~'
constexpr int kLineLength = 72;

const std::string& pattern_block() {
  static const std::string block = [] {
    std::string text;
    constexpr int kPeriods = 8;  // about 56 KiB: few system calls per period
    text.reserve(static_cast<std::size_t>(kPeriods * kPrintable * (kLineLength + 2)));
    for (int period = 0; period < kPeriods; ++period) {
      for (int line = 0; line < kPrintable; ++line) {
        for (int column = 0; column < kLineLength; ++column) {
          text.push_back(static_cast<char>(' ' + (1 + line + column) % kPrintable));
        }
        text += "\r\n";
      }
    }
    return text;
  }();
  return block;
}

// Both tasks are joined by serve_chargen, which owns the connection for
// longer than they run: the references are safe.
Task<> send_pattern(Connection& client, const ServiceOptions& options, Ending& ending) {
  const std::string& block = pattern_block();
  for (;;) {
    if (auto error = co_await client.write_all(block, options.write_timeout)) {
      // Closing is how a chargen client says it has had enough.
      const bool closed = error.value() == EPIPE || error.value() == ECONNRESET;
      ending = closed ? CloseReason::client_closed : ending_for(error, CloseReason::timeout_write);
      break;
    }
  }
  client.shutdown_read();  // ends discard_input
}

Task<> discard_input(Connection& client) {
  // No deadline of its own: it ends when the client closes, or when
  // send_pattern (which has the write deadline) shuts reading down.
  for (;;) {
    auto input = co_await client.read(64 * 1024);
    if (!input || input->empty()) break;
  }
}

}  // namespace

Task<Ending> serve_chargen(Connection& client, const ServiceOptions& options,
                           const SessionFacts& /*facts*/) {
  Ending ending = CloseReason::done;
  TaskScope both;
  both.spawn(discard_input(client));
  both.spawn(send_pattern(client, options, ending));
  co_await both.join();
  co_return ending;
}

}  // namespace salam::daemon
