// chargen (RFC 864): send lines until the client closes. Each line is 72
// characters of the 95 printable ASCII characters (space to '~') taken as a
// ring, plus CR LF; each line starts one character further along the ring,
// and the first one at '!', as in the RFC's example. The pattern repeats
// every 95 lines, so a precomputed block of whole periods is all that is
// ever sent.
#include <cerrno>
#include <string>

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

}  // namespace

Task<CloseReason> serve_chargen(Connection& client, const ServiceOptions& options) {
  const std::string& block = pattern_block();
  for (;;) {
    if (auto error = co_await client.write_all(block, options.idle_timeout)) {
      // Closing is how a chargen client says it has had enough.
      if (error.value() == EPIPE || error.value() == ECONNRESET)
        co_return CloseReason::client_closed;
      co_return reason_for(error, CloseReason::timeout_idle);
    }
  }
}

}  // namespace salam::daemon
