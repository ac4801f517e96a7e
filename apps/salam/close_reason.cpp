#include "close_reason.hpp"

#include <cerrno>
#include <cstring>

#include <salam/result.hpp>
#include <salam/tls.hpp>

namespace salam::daemon {

std::string_view to_string(CloseReason reason) noexcept {
  switch (reason) {
    case CloseReason::done:
      return "done";
    case CloseReason::client_closed:
      return "client_closed";
    case CloseReason::client_reset:
      return "client_reset";
    case CloseReason::timeout_first_byte:
      return "timeout_first_byte";
    case CloseReason::timeout_idle:
      return "timeout_idle";
    case CloseReason::timeout_write:
      return "timeout_write";
    case CloseReason::timeout_lifetime:
      return "timeout_lifetime";
    case CloseReason::timeout_proxy:
      return "timeout_proxy";
    case CloseReason::too_slow:
      return "too_slow";
    case CloseReason::denied:
      return "denied";
    case CloseReason::limit_conns:
      return "limit_conns";
    case CloseReason::limit_rate:
      return "limit_rate";
    case CloseReason::proxy_error:
      return "proxy_error";
    case CloseReason::timeout_tls:
      return "timeout_tls";
    case CloseReason::tls_error:
      return "tls_error";
    case CloseReason::limit_handshakes:
      return "limit_handshakes";
    case CloseReason::limit_children:
      return "limit_children";
    case CloseReason::exec_failed:
      return "exec_failed";
    case CloseReason::exec_timeout:
      return "exec_timeout";
    case CloseReason::shutdown:
      return "shutdown";
    case CloseReason::server_error:
      return "server_error";
  }
  return "server_error";
}

std::string_view errno_name(int error) noexcept {
  const char* name = ::strerrorname_np(error);
  return name != nullptr ? name : "unknown error";
}

Ending ending_for(std::error_code error, CloseReason on_timeout) noexcept {
  if (error == timed_out()) return on_timeout;
  if (error == cancelled()) return CloseReason::shutdown;
  if (error == tls::tls_failure()) return CloseReason::tls_error;
  switch (error.value()) {
    case ECONNRESET:
    case EPIPE:
    case ENOTCONN:
    case ECONNABORTED:
    case EHOSTUNREACH:
    case ENETUNREACH:
      return CloseReason::client_reset;
    default:
      return {CloseReason::server_error, error.value()};
  }
}

}  // namespace salam::daemon
