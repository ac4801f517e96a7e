// Result<T>: a value or an error code. The I/O path reports failure as a
// value, never as an exception (see docs/engine.md, "Errors"). Taking the
// value of a Result that holds an error ends the process with a message,
// in every build type: check ok() (or the Result itself) first.
//
// std::expected would do, but clang 14 (used for the fuzzers) cannot compile
// libstdc++'s <expected>, so this is the small subset salam needs.
#pragma once

#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

#include <salam/detail/contract.hpp>

namespace salam {

// Builds an error_code from an errno value (positive or negative, as the
// kernel and io_uring return them).
inline std::error_code errno_code(int err) noexcept {
  return {err < 0 ? -err : err, std::generic_category()};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) noexcept(std::is_nothrow_move_constructible_v<T>)  // NOLINT: implicit on purpose
      : value_(std::move(value)) {}
  Result(std::error_code error) noexcept : error_(error) {  // NOLINT
    detail::expects(static_cast<bool>(error_),
                    "a Result built from an error_code must hold an error");
  }

  bool ok() const noexcept { return !error_; }
  explicit operator bool() const noexcept { return ok(); }
  std::error_code error() const noexcept { return error_; }

  T& value() & noexcept {
    detail::expects(ok(), "Result::value() called on a Result that holds an error");
    return *value_;
  }
  const T& value() const& noexcept {
    detail::expects(ok(), "Result::value() called on a Result that holds an error");
    return *value_;
  }
  T&& value() && noexcept {
    detail::expects(ok(), "Result::value() called on a Result that holds an error");
    return std::move(*value_);
  }
  T* operator->() noexcept { return &value(); }
  const T* operator->() const noexcept { return &value(); }
  T& operator*() & noexcept { return value(); }
  const T& operator*() const& noexcept { return value(); }

 private:
  std::optional<T> value_;
  std::error_code error_{};
};

// The error a timed-out operation returns.
inline std::error_code timed_out() noexcept {
  return std::make_error_code(std::errc::timed_out);
}
// The error an operation cut short by Connection::close(), or by shutdown,
// returns.
inline std::error_code cancelled() noexcept {
  return std::make_error_code(std::errc::operation_canceled);
}
// The error a second read (or write) gets while one is in flight on the
// same connection.
inline std::error_code busy() noexcept {
  return std::make_error_code(std::errc::device_or_resource_busy);
}
// The error an operation on a closed connection gets.
inline std::error_code not_connected() noexcept {
  return std::make_error_code(std::errc::not_connected);
}

// salam's own errors, for outcomes that no errno names. Their category is
// named "salam".
enum class Errc : int {
  // The peer closed its side before a whole message arrived.
  end_of_file = 1,
  // A TLS handshake, read or write failed (see tls::failure_detail).
  tls_failure = 2,
};
const std::error_category& salam_category() noexcept;
// The error a read returns when the peer closed first (message "end of file").
std::error_code end_of_file() noexcept;

}  // namespace salam
