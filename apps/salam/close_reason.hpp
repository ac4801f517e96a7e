// Why a connection ended: exactly one reason per connection, in its
// access-log record.
#pragma once

#include <cstdint>
#include <string_view>
#include <system_error>

namespace salam::daemon {

enum class CloseReason : std::uint8_t {
  done,                // the service finished its exchange
  client_closed,       // the client closed first (end of file where more was expected)
  client_reset,        // the client reset the connection
  timeout_first_byte,  // nothing arrived within the read timeout
  timeout_idle,        // nothing moved for the idle timeout
  timeout_write,       // the client took none of a write for the write timeout
  timeout_lifetime,    // the connection reached its maximum lifetime
  timeout_proxy,       // the PROXY header did not arrive in time
  too_slow,            // below the minimum transfer rate
  denied,              // refused by the access list
  limit_conns,         // refused: too many connections (all, or this client's)
  limit_rate,          // refused: this client opens connections too fast
  proxy_error,         // a PROXY header missing, malformed, or from an untrusted peer
  timeout_tls,         // the TLS handshake did not finish in time
  tls_error,           // the TLS handshake failed, or TLS broke later (see the detail)
  limit_handshakes,    // refused: TLS handshakes over the rate limit (before any crypto)
  limit_children,      // exec: as many programs run as exec-max-children allows
  exec_failed,         // exec: the program could not be started (see the detail)
  exec_timeout,        // exec: the program ran past exec-timeout and was stopped
  shutdown,            // cut short by the drain deadline
  server_error,        // a failure on the server's side (out of buffers, ...)
};

inline constexpr int kCloseReasons = static_cast<int>(CloseReason::server_error) + 1;

// Reasons that only a refusal has: the connection never reached its
// service. (tls_error is a refusal when the handshake failed.)
constexpr bool is_refusal(CloseReason reason) noexcept {
  return reason == CloseReason::denied || reason == CloseReason::limit_conns ||
         reason == CloseReason::limit_rate || reason == CloseReason::proxy_error ||
         reason == CloseReason::timeout_proxy || reason == CloseReason::timeout_tls ||
         reason == CloseReason::limit_handshakes;
}

std::string_view to_string(CloseReason reason) noexcept;

// How a connection ended: its reason and, for a server_error, the errno
// behind it (0 if none), which the access record names, or a detail of
// the service's own (a static string: an exit status, a signal's name).
struct Ending {
  CloseReason reason;
  int error = 0;
  std::string_view detail;
  // Implicit: a reason alone is an ending.
  constexpr Ending(CloseReason why, int errno_value = 0) noexcept  // NOLINT
      : reason(why), error(errno_value) {}
  constexpr Ending(CloseReason why, std::string_view why_detail) noexcept
      : reason(why), detail(why_detail) {}
};

// The ending an I/O error means; `on_timeout` says which deadline it was.
Ending ending_for(std::error_code error, CloseReason on_timeout) noexcept;

// An errno's symbolic name ("ENOBUFS"), a static string; "unknown error"
// for a value without one.
std::string_view errno_name(int error) noexcept;

}  // namespace salam::daemon
