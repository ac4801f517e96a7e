// Contracts that hold in every build type.
//
// Misusing libsalam (a Result's value taken from an error, a TaskScope
// destroyed with tasks running, a Connection destroyed under an operation)
// would be undefined behaviour that a release build hides. Such misuse ends
// the process instead, with one line on stderr naming the contract, so
// that it is found where it happens, not far away in corrupted memory.
#pragma once

namespace salam::detail {

// Writes "salam: contract violated: <what>" to stderr and aborts.
[[noreturn]] void contract_violation(const char* what) noexcept;

// Checks a contract; costs one predictable branch.
inline void expects(bool holds, const char* what) noexcept {
  if (!holds) [[unlikely]]
    contract_violation(what);
}

}  // namespace salam::detail
