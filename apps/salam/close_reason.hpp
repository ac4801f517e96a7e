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
  limit_conns,         // refused: too many connections
  shutdown,            // cut short by the drain deadline
  server_error,        // a failure on the server's side (out of buffers, ...)
};

std::string_view to_string(CloseReason reason) noexcept;

// The reason an I/O error means; `on_timeout` says which deadline it was.
CloseReason reason_for(std::error_code error, CloseReason on_timeout) noexcept;

}  // namespace salam::daemon
