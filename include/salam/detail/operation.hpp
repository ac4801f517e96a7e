// One asynchronous kernel operation, as both backends see it.
//
// An Operation lives in the awaiter that started it, which lives in the
// coroutine frame, so starting I/O allocates nothing. It is handed to the
// Loop, which gives it to the backend (io_uring or epoll) and, for a
// deadline, to its timer heap. The backend reports the outcome through
// Loop::complete(), which unlinks the operation and calls on_complete.
//
// Lifetime: the memory an operation names (buffer, address) and the
// operation itself must stay valid until on_complete has run for the last
// time. Awaiters guarantee this by staying suspended until then.
#pragma once

#include <coroutine>
#include <cstdint>
#include <type_traits>

#include <sys/socket.h>

#include <salam/time.hpp>

namespace salam::detail {

enum class OpCode : std::uint8_t {
  accept,       // fd: listener; buffer/length: room for the peer's sockaddr (optional)
  recv,         // into buffer/length
  recv_pooled,  // into a buffer the loop's pool chooses; result flags carry its id
  send,         // from buffer/length, never raises SIGPIPE
  connect,      // buffer/length: the sockaddr to connect to
  read,         // read(2): for eventfd and pipes
  sleep,        // no I/O: completes at the deadline
};

// Bits of Operation::flags set by the backend on completion.
inline constexpr std::uint32_t kMoreCompletions = 1u << 0;  // a multishot op stays armed
inline constexpr std::uint32_t kHasBuffer = 1u << 1;        // buffer_id is valid
inline constexpr std::uint32_t kInputLeft = 1u << 2;  // a read left input queued (or may have)
inline constexpr std::uint32_t kHasPeer = 1u << 3;    // an accept wrote the peer's address

static_assert(std::is_same_v<socklen_t, std::uint32_t>, "Operation::length doubles as a socklen_t");

struct Operation {
  using Callback = void (*)(Operation&);

  // What to do.
  OpCode code = OpCode::sleep;
  bool multishot = false;
  int fd = -1;
  void* buffer = nullptr;
  std::uint32_t length = 0;  // accept: in and out, as accept(2)'s address length
  int msg_flags = 0;

  // The outcome, set before on_complete runs: >= 0 is a byte count or a
  // descriptor, < 0 is -errno.
  int result = 0;
  std::uint32_t flags = 0;
  std::uint16_t buffer_id = 0;

  // Who to tell. `waiter` is free for awaiters to use.
  Callback on_complete = nullptr;
  std::coroutine_handle<> waiter;

  // The Loop's bookkeeping; not for backends or awaiters.
  TimePoint deadline = TimePoint::max();
  std::uint32_t heap_index = kNotInHeap;
  bool in_flight = false;
  bool internal = false;  // not cancelled by Loop::cancel_all (the loop's own wake-up read)
  // The engine's own pause timers (an accept backoff): armed from the timer
  // heap's spare slots, so that memory running out cannot turn a pause
  // into a busy loop.
  bool essential = false;
  bool timed_out = false;
  bool cancel_requested = false;
  Operation* prev = nullptr;
  Operation* next = nullptr;

  static constexpr std::uint32_t kNotInHeap = UINT32_MAX;
};

}  // namespace salam::detail
