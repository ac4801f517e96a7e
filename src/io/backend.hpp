// The small interface between a Loop and the kernel: one implementation on
// io_uring (uring_backend.cpp), one on epoll (epoll_backend.cpp).
//
// io_uring is a completion interface and epoll a readiness one; the
// contract below is completion-shaped, and the epoll backend emulates it by
// trying each operation at once and, on EAGAIN, parking it until its
// descriptor is ready.
//
// Threading: a backend belongs to one Loop and is used on its thread only,
// except wake-ups, which go through the Loop's eventfd.
#pragma once

#include <cstdint>
#include <memory>

#include <salam/detail/operation.hpp>
#include <salam/loop.hpp>
#include <salam/time.hpp>

#include "io/buffer_pool.hpp"

namespace salam::detail {

class Backend {
 public:
  // `buffers` is the loop's receive-buffer pool, which outlives the backend.
  Backend(Loop& loop, BufferPool& buffers) : loop_(loop), buffers_(buffers) {}
  virtual ~Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  // Starts `op`. Returns true if it completed at once (result set, no
  // callback); false if Loop::complete() will be called later. Multishot
  // operations never complete at once.
  virtual bool start(Operation& op) noexcept = 0;
  // Asks a pending operation to end with -ECANCELED. Its completion comes
  // later through Loop::complete() or Loop::complete_later(), never from
  // inside cancel().
  virtual void cancel(Operation& op) noexcept = 0;
  // Waits at most `timeout` (negative: no limit) for completions and
  // delivers them. Returns early if the loop's eventfd is written.
  virtual void wait(Duration timeout) noexcept = 0;
  // Hands operations started but not yet given to the kernel over now.
  // io_uring reads an SQE's descriptor number only when it submits it:
  // before closing a descriptor that an operation still names, submit, so
  // that the kernel holds the file (and never sees the number reused).
  virtual void submit_started() noexcept = 0;
  // Closes a descriptor that no operation names any more. io_uring queues
  // the close with the next submission (its number stays taken until then,
  // so nothing can reuse it early); epoll closes at once.
  virtual void close_fd(int fd) noexcept = 0;
  // A descriptor is about to be closed; forget anything kept about it.
  virtual void forget_fd(int fd) noexcept = 0;
  // This loop is done with a descriptor that stays open elsewhere (a
  // listener other shards still use): stop watching it.
  virtual void unwatch_fd(int fd) noexcept = 0;
  // Few receive buffers left for new reads (see Loop::buffers_scarce).
  virtual bool buffers_scarce() const noexcept = 0;
  // Returns a pooled receive buffer to the pool.
  virtual void recycle_buffer(std::uint16_t id) noexcept = 0;
  // SOCK_NONBLOCK if sockets must be non-blocking, else 0.
  virtual int socket_flags() const noexcept = 0;

  BufferPool& buffers() noexcept { return buffers_; }

 protected:
  Loop& loop_;
  BufferPool& buffers_;
};

std::unique_ptr<Backend> make_uring_backend(Loop& loop, const LoopOptions& options,
                                            BufferPool& buffers);
std::unique_ptr<Backend> make_epoll_backend(Loop& loop, BufferPool& buffers);

class TimerHeap;
// The fault-injection seam, for tests (io/fault_backend.cpp, and the
// syntax in docs/testing.md). With SALAM_FAULTS set, wraps `backend` in
// one that fails operations on purpose, and makes `timers` fail to arm
// timers, as the variable says; throws std::invalid_argument if it is
// malformed. Returns `backend` as it is when the variable is unset or
// empty, and always in a build without SALAM_FAULT_INJECTION.
std::unique_ptr<Backend> inject_faults(Loop& loop, std::unique_ptr<Backend> backend,
                                       TimerHeap& timers);

}  // namespace salam::detail
