// Loop: one event loop, owned by one thread (a shard).
//
// A Loop drives one backend (an io_uring instance or an epoll set), a timer
// heap and a TaskScope. Everything a Loop owns is touched only on the
// thread that runs it; the single exception is post(), which any thread may
// call to hand work over.
//
// Threading: construct, run and destroy a Loop on the same thread (io_uring
// rings are created single-issuer). Loop::current() is the loop running on
// the calling thread.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <system_error>
#include <vector>

#include <salam/detail/operation.hpp>
#include <salam/scope.hpp>
#include <salam/socket.hpp>
#include <salam/task.hpp>
#include <salam/time.hpp>

namespace salam {

enum class BackendKind : std::uint8_t { automatic, io_uring, epoll };

std::string_view to_string(BackendKind kind) noexcept;
// Parses "auto", "io_uring" or "epoll"; throws std::invalid_argument.
BackendKind parse_backend_kind(std::string_view text);

struct LoopOptions {
  BackendKind backend = BackendKind::automatic;
  // Receive buffers are shared by all connections of a loop and lent out
  // only while a read completes, so an idle connection holds none.
  std::uint32_t buffer_size = 64 * 1024;
  std::uint16_t buffers_initial = 64;
  std::uint16_t buffers_max = 1024;
  // io_uring submission queue entries.
  std::uint32_t ring_entries = 4096;
  // Closing a connection with input left unread makes the kernel send an
  // RST, which can destroy a reply the peer has not read yet. Such a close
  // lingers in the loop instead (see Connection::close): writes are shut
  // down and input is read and thrown away until the peer closes, for at
  // most this long and this many bytes.
  Duration linger_timeout = std::chrono::seconds(5);
  std::size_t linger_max_bytes = 64 * 1024;
  // At most this many connections linger at once; past it, a close is
  // immediate (lingering descriptors count against no connection limit).
  std::size_t linger_max_connections = 1024;
};

namespace detail {
class Backend;
class TimerHeap;
class BufferPool;
class ConnectionObserver;
struct Engine;
}  // namespace detail

class Loop {
 public:
  // Throws std::system_error when the backend cannot be set up. `automatic`
  // must have been resolved by resolve_backend() first.
  explicit Loop(const LoopOptions& options = {});
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;
  ~Loop();

  // The loop running on this thread. Only inside run() (a Server's
  // handlers, handler factories and shard tasks all run there); called
  // anywhere else it ends the process with a message.
  static Loop& current() noexcept;
  // The same, or null outside a running loop.
  static Loop* current_or_null() noexcept;

  BackendKind backend() const noexcept { return kind_; }

  // Runs `main` and everything spawned onto this loop, and returns when
  // all of it has finished. Exceptions from `main` are rethrown.
  void run(Task<> main);

  // Starts a task owned by this loop; run() waits for it. In a Server's
  // shard, tasks spawned here that are still running when the shard has
  // drained are cancelled: their operations return cancelled(), and a
  // task must end when one does. (For work that should stop as soon as the
  // server stops, use Server::on_each_shard.)
  void spawn(Task<> task) noexcept { tasks_.spawn(std::move(task)); }

  // Thread-safe: runs `work` on this loop's thread, soon.
  void post(std::function<void()> work);

  // The time the loop last woke up (cheap; use it for logs and rates).
  TimePoint now() const noexcept { return now_; }

  // co_await loop.sleep(d): completes after d, or early with cancelled().
  class SleepAwaiter;
  SleepAwaiter sleep(Duration duration) noexcept;
  SleepAwaiter sleep_until(TimePoint when) noexcept;

  // The engine's side (awaiters, backends, shards) goes through
  // detail::Engine (src/engine.hpp); none of it is for handlers.
 private:
  friend struct detail::Engine;

  // Starts `op` with an optional deadline. Returns true if it completed
  // at once (the result is in op.result and on_complete will not run);
  // otherwise on_complete runs later from this loop.
  bool start(detail::Operation& op, Deadline deadline = Deadline::never()) noexcept;
  // Asks `op` to finish early; it completes with cancelled() unless it was
  // already done. Never calls on_complete from inside.
  void cancel(detail::Operation& op) noexcept;
  // Called by backends (and the timer) with the outcome in op.result.
  void complete(detail::Operation& op) noexcept;
  // Queues `op` to complete on the next turn (used where completing inline
  // would re-enter the caller).
  void complete_later(detail::Operation& op) noexcept;

  // Completes every operation in flight with cancelled() and makes
  // operations started afterwards fail at once, so that every task runs to
  // its end. Used by shutdown after the drain deadline (the engine's,
  // through detail::Engine: a handler that called it would end its shard).
  void cancel_all() noexcept;
  bool cancelling() const noexcept { return cancelling_; }

  // Sends `farewell` (a layer's last words, such as TLS's close_notify),
  // then, if `drain`, shuts down writes and closes `socket` once its peer
  // has closed or the linger bounds pass; without `drain` it closes once
  // the farewell is out.
  void linger(FileDescriptor socket, detail::ConnectionObserver* observer,
              std::vector<std::byte> farewell, bool drain) noexcept;

  void turn();
  void run_posted();
  void expire_timers();
  void run_deferred();
  void arm_wakeup() noexcept;
  static void on_wakeup(detail::Operation& op);
  void link(detail::Operation& op) noexcept;
  void unlink(detail::Operation& op) noexcept;

  BackendKind kind_;
  Duration linger_timeout_;
  std::size_t linger_max_bytes_;
  std::size_t linger_max_connections_;
  std::size_t lingering_ = 0;
  // The receive buffers; the backend uses them, and goes first.
  std::unique_ptr<detail::BufferPool> buffers_;
  std::unique_ptr<detail::Backend> backend_;
  std::unique_ptr<detail::TimerHeap> timers_;
  TaskScope tasks_;
  TimePoint now_;
  bool cancelling_ = false;

  // Operations in flight, for cancel_all (intrusive, doubly linked).
  detail::Operation* in_flight_ = nullptr;
  // Operations completed out of line, run on the next turn.
  std::vector<detail::Operation*> deferred_;
  std::vector<detail::Operation*> deferred_batch_;  // the batch being completed

  // post(): a queue under a mutex (posting is rare and never on the
  // per-connection path) and an eventfd read that wakes the loop.
  std::mutex posted_mutex_;
  std::vector<std::function<void()>> posted_;
  struct WakeOperation : detail::Operation {
    Loop* loop = nullptr;
    std::uint64_t value = 0;
  };
  int wake_fd_ = -1;
  WakeOperation wake_op_;
  bool closing_ = false;
};

class [[nodiscard]] Loop::SleepAwaiter {
 public:
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> handle) noexcept;
  // Empty when the full time passed; cancelled() when cut short.
  std::error_code await_resume() const noexcept;

 private:
  friend class Loop;
  SleepAwaiter(Loop& loop, TimePoint when) noexcept : loop_(&loop), when_(when) {}

  detail::Operation op_;
  Loop* loop_;
  TimePoint when_;
};

// Chooses the backend for `requested`: `automatic` becomes io_uring when
// the kernel allows it, else epoll, and `why_not` says why io_uring was not
// taken. The environment variable SALAM_BACKEND (auto, io_uring, epoll)
// replaces `automatic`. Asking for io_uring where it cannot work throws
// std::system_error.
BackendKind resolve_backend(BackendKind requested, std::string* why_not = nullptr);

}  // namespace salam
