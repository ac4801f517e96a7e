#include <cstdlib>
#include <cstring>

#include <unistd.h>

#include <salam/detail/contract.hpp>

namespace salam::detail {

void contract_violation(const char* what) noexcept {
  // No allocation and no stdio: the process may be in any state.
  constexpr const char prefix[] = "salam: contract violated: ";
  [[maybe_unused]] auto ignored = ::write(STDERR_FILENO, prefix, sizeof prefix - 1);
  ignored = ::write(STDERR_FILENO, what, std::strlen(what));
  ignored = ::write(STDERR_FILENO, "\n", 1);
  std::abort();
}

}  // namespace salam::detail
