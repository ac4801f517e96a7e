#include "io/backend.hpp"

#include <cstdlib>
#include <mutex>
#include <string>
#include <system_error>

#include <salam/log.hpp>

namespace salam {

namespace detail {
std::string probe_io_uring();
}

BackendKind resolve_backend(BackendKind requested, std::string* why_not) {
  // SALAM_BACKEND lets an operator (or a test) choose for programs that
  // have no flag for it, like the examples.
  if (requested == BackendKind::automatic) {
    if (const char* forced = std::getenv("SALAM_BACKEND"); forced != nullptr && *forced != '\0') {
      requested = parse_backend_kind(forced);
    }
  }
  if (requested == BackendKind::epoll) return requested;
  // The probe sets up a ring; do it once per process.
  static std::once_flag once;
  static std::string uring_problem;
  std::call_once(once, [] { uring_problem = detail::probe_io_uring(); });
  if (uring_problem.empty()) return BackendKind::io_uring;
  if (requested == BackendKind::io_uring) {
    throw std::system_error(std::make_error_code(std::errc::function_not_supported),
                            "backend io_uring: " + uring_problem);
  }
  if (why_not != nullptr) *why_not = uring_problem;
  return BackendKind::epoll;
}

}  // namespace salam
