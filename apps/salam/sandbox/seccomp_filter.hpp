// The system call filter: once salam has started, a call outside the
// allowlist (syscall_allowlist.cpp) kills the process.
#pragma once

#include <span>

namespace salam::daemon {

// The calls allowed whatever their arguments, by name (syscall_allowlist.cpp).
std::span<const char* const> allowed_system_calls();

// Installs the filter on every thread of the process (and, as seccomp
// filters are, on every process it starts). Throws std::runtime_error.
void install_system_call_filter();

}  // namespace salam::daemon
