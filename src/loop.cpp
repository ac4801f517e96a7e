#include <cerrno>
#include <stdexcept>
#include <system_error>

#include <sys/eventfd.h>
#include <unistd.h>

#include <salam/detail/contract.hpp>
#include <salam/log.hpp>
#include <salam/loop.hpp>
#include <salam/printable.hpp>
#include <salam/result.hpp>

#include "engine.hpp"
#include "io/backend.hpp"
#include "io/buffer_pool.hpp"
#include "timer_heap.hpp"

namespace salam {

namespace {

thread_local Loop* current_loop = nullptr;

Task<> run_main(Task<> main, std::exception_ptr& error) {
  try {
    co_await std::move(main);
  } catch (...) {
    error = std::current_exception();
  }
}

}  // namespace

std::string_view to_string(BackendKind kind) noexcept {
  switch (kind) {
    case BackendKind::automatic:
      return "auto";
    case BackendKind::io_uring:
      return "io_uring";
    case BackendKind::epoll:
      return "epoll";
  }
  return "?";
}

BackendKind parse_backend_kind(std::string_view text) {
  if (text == "auto") return BackendKind::automatic;
  if (text == "io_uring" || text == "uring") return BackendKind::io_uring;
  if (text == "epoll") return BackendKind::epoll;
  throw std::invalid_argument("unknown backend '" + printable(text) +
                              "' (expected auto, io_uring or epoll)");
}

Loop::Loop(const LoopOptions& options)
    : kind_(resolve_backend(options.backend)),
      linger_timeout_(options.linger_timeout),
      linger_max_bytes_(options.linger_max_bytes),
      linger_max_connections_(options.linger_max_connections),
      buffers_(std::make_unique<detail::BufferPool>(options.buffer_size, options.buffers_initial,
                                                    options.buffers_max)),
      timers_(std::make_unique<detail::TimerHeap>()),
      now_(Clock::now()) {
  backend_ = kind_ == BackendKind::io_uring ? detail::make_uring_backend(*this, options, *buffers_)
                                            : detail::make_epoll_backend(*this, *buffers_);
  backend_ = detail::inject_faults(*this, std::move(backend_), *timers_);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) throw std::system_error(errno, std::system_category(), "eventfd");
  wake_op_.loop = this;
  wake_op_.internal = true;
  arm_wakeup();
}

Loop::~Loop() {
  // Reap the wake-up read (and anything a misbehaving owner left) before
  // the memory it names goes away: io_uring may still write into it.
  closing_ = true;
  cancelling_ = true;
  for (detail::Operation* op = in_flight_; op != nullptr; op = op->next)
    cancel(*op);
  for (int round = 0; in_flight_ != nullptr && round < 1000; ++round) {
    run_deferred();
    if (in_flight_ != nullptr) backend_->wait(std::chrono::milliseconds(10));
  }
  run_deferred();
  backend_.reset();
  ::close(wake_fd_);
}

Loop& Loop::current() noexcept {
  detail::expects(current_loop != nullptr, "Loop::current() called outside a running loop");
  return *current_loop;
}

Loop* Loop::current_or_null() noexcept {
  return current_loop;
}

void Loop::run(Task<> main) {
  Loop* previous = std::exchange(current_loop, this);
  log::set_thread_buffering(true);
  std::exception_ptr error;
  now_ = Clock::now();
  tasks_.spawn(run_main(std::move(main), error));
  while (tasks_.active() > 0)
    turn();
  backend_->submit_started();  // closes queued by the last tasks
  log::set_thread_buffering(false);
  current_loop = previous;
  if (error) std::rethrow_exception(error);
}

void Loop::turn() {
  run_deferred();
  run_posted();
  if (tasks_.active() == 0) return;  // the last task just ended: do not block
  Duration timeout{-1};
  if (!deferred_.empty()) {
    timeout = Duration::zero();
  } else if (const detail::Operation* next = timers_->top()) {
    timeout = std::max(Duration::zero(), next->deadline - Clock::now());
  }
  // Everything logged since the last wait goes out in one write, before
  // the loop may block.
  log::flush_thread_buffer();
  backend_->wait(timeout);
  now_ = Clock::now();
  expire_timers();
}

void Loop::post(std::function<void()> work) {
  bool was_empty;
  {
    std::lock_guard lock(posted_mutex_);
    was_empty = posted_.empty();
    posted_.push_back(std::move(work));
  }
  if (was_empty) {
    std::uint64_t one = 1;
    // A full eventfd counter (EAGAIN) still wakes the loop; nothing to do.
    [[maybe_unused]] auto written = ::write(wake_fd_, &one, sizeof one);
  }
}

void Loop::run_posted() {
  std::vector<std::function<void()>> work;
  {
    std::lock_guard lock(posted_mutex_);
    if (posted_.empty()) return;
    work.swap(posted_);
  }
  for (auto& item : work)
    item();
}

void Loop::arm_wakeup() noexcept {
  // The eventfd is non-blocking: the epoll backend may complete this read
  // at once when a post raced ahead; keep reading until it parks.
  for (;;) {
    wake_op_.code = detail::OpCode::read;
    wake_op_.fd = wake_fd_;
    wake_op_.buffer = &wake_op_.value;
    wake_op_.length = sizeof wake_op_.value;
    wake_op_.on_complete = &Loop::on_wakeup;
    if (!start(wake_op_)) return;
    if (wake_op_.result < 0 && wake_op_.result != -EINTR) {
      log::critical("loop wake-up read failed: {}", errno_code(wake_op_.result).message());
      return;
    }
  }
}

void Loop::on_wakeup(detail::Operation& op) {
  auto& wake = static_cast<WakeOperation&>(op);
  if (wake.loop->closing_) return;
  if (op.result < 0 && op.result != -EINTR && op.result != -EAGAIN) {
    log::critical("loop wake-up read failed: {}", errno_code(op.result).message());
    return;
  }
  wake.loop->arm_wakeup();
}

void Loop::link(detail::Operation& op) noexcept {
  op.in_flight = true;
  op.prev = nullptr;
  op.next = in_flight_;
  if (in_flight_ != nullptr) in_flight_->prev = &op;
  in_flight_ = &op;
}

void Loop::unlink(detail::Operation& op) noexcept {
  if (!op.in_flight) return;
  op.in_flight = false;
  if (op.prev != nullptr) {
    op.prev->next = op.next;
  } else {
    in_flight_ = op.next;
  }
  if (op.next != nullptr) op.next->prev = op.prev;
  op.prev = op.next = nullptr;
}

bool Loop::start(detail::Operation& op, Deadline deadline) noexcept {
  op.result = 0;
  op.flags = 0;
  op.timed_out = false;
  op.cancel_requested = false;
  if (cancelling_ && !op.internal) {
    op.result = -ECANCELED;
    return true;
  }
  op.deadline = deadline.at();
  // Out of memory for the timer heap: the operation fails, the loop goes on.
  // A sleep without a deadline (an Event's wait) takes no slot and cannot
  // fail this way: only a cancellation ends it. Ended at once, its waiter
  // would carry on as if woken (a shard, as if asked to stop).
  if (!deadline.is_never() && !timers_->reserve_one(op.essential)) {
    op.result = -ENOMEM;
    return true;
  }
  if (op.code == detail::OpCode::sleep) {
    if (op.deadline <= Clock::now()) return true;
    link(op);
    if (!deadline.is_never()) timers_->push(op);
    return false;
  }
  if (backend_->start(op)) return true;
  link(op);
  if (!deadline.is_never()) timers_->push(op);
  return false;
}

void Loop::cancel(detail::Operation& op) noexcept {
  if (!op.in_flight || op.cancel_requested) return;
  op.cancel_requested = true;
  if (op.code == detail::OpCode::sleep) {
    timers_->remove(op);
    op.result = -ECANCELED;
    complete_later(op);
    return;
  }
  backend_->cancel(op);
}

void Loop::cancel_all() noexcept {
  cancelling_ = true;
  for (detail::Operation* op = in_flight_; op != nullptr; op = op->next) {
    if (!op->internal) cancel(*op);
  }
}

void Loop::complete(detail::Operation& op) noexcept {
  if ((op.flags & detail::kMoreCompletions) == 0) {
    unlink(op);
    timers_->remove(op);
  }
  if (op.timed_out && op.result == -ECANCELED) op.result = -ETIMEDOUT;
  op.on_complete(op);
}

void Loop::complete_later(detail::Operation& op) noexcept {
  try {
    deferred_.push_back(&op);
  } catch (const std::bad_alloc&) {
    complete(op);  // no memory to defer it: complete it now
  }
}

void Loop::run_deferred() {
  // Completions may defer more; take them in batches until none is left.
  // The two vectors trade places, so neither allocates once warm.
  while (!deferred_.empty()) {
    deferred_batch_.swap(deferred_);
    for (detail::Operation* op : deferred_batch_)
      complete(*op);
    deferred_batch_.clear();
  }
}

void Loop::expire_timers() {
  while (detail::Operation* op = timers_->top()) {
    if (op->deadline > now_) break;
    timers_->pop();
    if (op->code == detail::OpCode::sleep) {
      op->result = 0;
      complete(*op);
    } else if (!op->cancel_requested) {
      op->timed_out = true;
      op->cancel_requested = true;
      backend_->cancel(*op);
    }
  }
}

}  // namespace salam

namespace salam::detail {

std::byte* Engine::buffer_data(Loop& loop, std::uint16_t id) noexcept {
  return loop.buffers_->data(id);
}
std::uint32_t Engine::buffer_size(const Loop& loop) noexcept {
  return loop.buffers_->buffer_size();
}
void Engine::recycle_buffer(Loop& loop, std::uint16_t id) noexcept {
  loop.backend_->recycle_buffer(id);
}
bool Engine::buffers_scarce(const Loop& loop) noexcept {
  return loop.backend_->buffers_scarce();
}
int Engine::socket_flags(const Loop& loop) noexcept {
  return loop.backend_->socket_flags();
}
void Engine::submit_started(Loop& loop) noexcept {
  loop.backend_->submit_started();
}
void Engine::close_fd(Loop& loop, FileDescriptor fd) noexcept {
  // Outside its run() nothing would submit a queued close: close now.
  if (current_loop != &loop) {
    loop.backend_->forget_fd(fd.get());
    return;  // `fd` closes itself on the way out
  }
  loop.backend_->close_fd(fd.release());
}
void Engine::forget_fd(Loop& loop, int fd) noexcept {
  loop.backend_->forget_fd(fd);
}
void Engine::unwatch_fd(Loop& loop, int fd) noexcept {
  loop.backend_->unwatch_fd(fd);
}

}  // namespace salam::detail

namespace salam {

Loop::SleepAwaiter Loop::sleep(Duration duration) noexcept {
  return sleep_until(Clock::now() + duration);
}

Loop::SleepAwaiter Loop::sleep_until(TimePoint when) noexcept {
  return SleepAwaiter(*this, when);
}

bool Loop::SleepAwaiter::await_suspend(std::coroutine_handle<> handle) noexcept {
  op_.code = detail::OpCode::sleep;
  op_.waiter = handle;
  op_.on_complete = [](detail::Operation& op) { op.waiter.resume(); };
  return !loop_->start(op_, Deadline{when_});
}

std::error_code Loop::SleepAwaiter::await_resume() const noexcept {
  return op_.result < 0 ? errno_code(op_.result) : std::error_code{};
}

}  // namespace salam
