// The fault-injection seam: a backend that wraps the real one and fails
// operations on purpose, as SALAM_FAULTS says (docs/testing.md), so that
// tests reach the engine's error paths on both backends. It is built only
// with SALAM_FAULT_INJECTION, and a loop gets it only when the variable is
// set: otherwise the loop talks to its backend directly.
//
// A failure looks to the engine as the kernel's would:
//  - A one-shot operation (accept, read, write) chosen to fail is never
//    given to the real backend: it completes with -errno on the next wait,
//    as an io_uring completion would, and a cancellation in between makes
//    it complete with -ECANCELED instead.
//  - A multishot accept runs for real through a shadow operation of the
//    seam's, whose completions it passes on, one per connection. The
//    connection chosen to fail is closed at once, in place of the one the
//    kernel would have left in the queue; the real multishot is cancelled,
//    and its last completion reports the error, so that the accept ends as
//    a kernel error ends it. Connections accepted before the cancellation
//    landed are passed on before that.
//  - A pooled read chosen by the buffer rule fails with -ENOBUFS, as when
//    the pool has nothing to lend; it is checked before the read rule.
//  - Timers are armed by the Loop, not the backend: the timer rule goes to
//    the loop's timer heap (TimerHeap::inject_faults).
// The loop's own wake-up read is never failed.
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include <unistd.h>

#include "engine.hpp"
#include "io/backend.hpp"
#include "io/fault_plan.hpp"
#include "timer_heap.hpp"

namespace salam::detail {

namespace {

class FaultBackend final : public Backend {
 public:
  FaultBackend(Loop& loop, std::unique_ptr<Backend> inner, const FaultPlan& plan)
      : Backend(loop, inner->buffers()), inner_(std::move(inner)), plan_(plan) {}

  bool start(Operation& op) noexcept override {
    if (op.internal) return inner_->start(op);
    if (op.multishot) return plan_[FaultKind::accept] ? start_shadow(op) : inner_->start(op);
    const int error = error_for(op);
    if (error == 0) return inner_->start(op);
    op.result = -error;
    op.flags = 0;
    try {
      failed_.push_back(&op);
    } catch (const std::bad_alloc&) {
      return true;  // a one-shot operation may complete at once
    }
    return false;
  }

  void cancel(Operation& op) noexcept override {
    if (std::ranges::find(failed_, &op) != failed_.end() ||
        std::ranges::find(delivering_, &op) != delivering_.end()) {
      op.result = -ECANCELED;  // it completes on the next wait, cancelled
      return;
    }
    if (Shadow* shadow = shadow_of(op)) {
      cancel_shadow(*shadow);
      return;
    }
    inner_->cancel(op);
  }

  void wait(Duration timeout) noexcept override {
    inner_->wait(failed_.empty() ? timeout : Duration::zero());
    // The real backend has let go of finished shadows by now (epoll may
    // look at one in the same wait that finished it).
    std::erase_if(shadows_, [](const auto& shadow) { return shadow->finished; });
    // Completions may fail more operations, for the next wait. The two
    // vectors trade places, so neither allocates once warm; an entry is
    // cleared as it completes, so that cancel() sees only those to come.
    delivering_.swap(failed_);
    for (Operation*& op : delivering_)
      Engine::complete(loop_, *std::exchange(op, nullptr));
    delivering_.clear();
  }

  void submit_started() noexcept override { inner_->submit_started(); }
  void close_fd(int fd) noexcept override { inner_->close_fd(fd); }
  void forget_fd(int fd) noexcept override { inner_->forget_fd(fd); }
  void unwatch_fd(int fd) noexcept override { inner_->unwatch_fd(fd); }
  bool buffers_scarce() const noexcept override { return inner_->buffers_scarce(); }
  void recycle_buffer(std::uint16_t id) noexcept override { inner_->recycle_buffer(id); }
  int socket_flags() const noexcept override { return inner_->socket_flags(); }

 private:
  // A multishot accept as the real backend runs it, on behalf of `outer`.
  struct Shadow : Operation {
    FaultBackend* backend = nullptr;
    Operation* outer = nullptr;
    int injected = 0;  // the error its last completion reports, once chosen
    bool cancelling = false;
    bool finished = false;
  };

  // The error `op` is to fail with, or 0.
  int error_for(const Operation& op) noexcept {
    switch (op.code) {
      case OpCode::accept:
        return next_error(FaultKind::accept);
      case OpCode::recv_pooled:
        if (const int error = next_error(FaultKind::buffer)) return error;
        return next_error(FaultKind::read);
      case OpCode::recv:
      case OpCode::read:
        return next_error(FaultKind::read);
      case OpCode::send:
        return next_error(FaultKind::write);
      case OpCode::connect:
      case OpCode::sleep:
        break;
    }
    return 0;
  }

  int next_error(FaultKind kind) noexcept {
    auto& schedule = plan_[kind];
    return schedule && schedule->fails() ? schedule->error() : 0;
  }

  bool start_shadow(Operation& op) noexcept {
    std::unique_ptr<Shadow> shadow;
    try {
      shadow = std::make_unique<Shadow>();
      shadows_.reserve(shadows_.size() + 1);
    } catch (const std::bad_alloc&) {
      return inner_->start(op);  // no memory for the seam: this accept runs as it is
    }
    shadow->code = op.code;
    shadow->multishot = true;
    shadow->fd = op.fd;
    shadow->buffer = op.buffer;
    shadow->length = op.length;
    shadow->msg_flags = op.msg_flags;
    shadow->on_complete = &FaultBackend::on_shadow_complete;
    shadow->backend = this;
    shadow->outer = &op;
    if (inner_->start(*shadow)) {  // epoll: the listener could not be watched
      op.result = shadow->result;
      op.flags = shadow->flags;
      return true;
    }
    shadows_.push_back(std::move(shadow));
    return false;
  }

  Shadow* shadow_of(const Operation& op) noexcept {
    for (const auto& shadow : shadows_) {
      if (shadow->outer == &op && !shadow->finished) return shadow.get();
    }
    return nullptr;
  }

  void cancel_shadow(Shadow& shadow) noexcept {
    if (shadow.cancelling) return;  // epoll would complete it twice
    shadow.cancelling = true;
    inner_->cancel(shadow);
  }

  static void on_shadow_complete(Operation& op) noexcept {
    auto& shadow = static_cast<Shadow&>(op);
    shadow.backend->pass_on(shadow);
  }

  void pass_on(Shadow& shadow) noexcept {
    Operation& outer = *shadow.outer;
    const bool more = (shadow.flags & kMoreCompletions) != 0;
    if (shadow.injected == 0 && more && shadow.result >= 0) {
      if (const int error = next_error(FaultKind::accept)) {
        // This is the connection the kernel would have failed to accept.
        shadow.injected = error;
        ::close(shadow.result);
        cancel_shadow(shadow);
        return;
      }
    }
    if (!more && shadow.injected != 0) {
      if (shadow.result >= 0) ::close(shadow.result);
      outer.result = outer.cancel_requested ? -ECANCELED : -shadow.injected;
      outer.flags = 0;
    } else {
      // Connections accepted before the cancellation landed go on as well.
      outer.result = shadow.result;
      outer.flags = shadow.flags;
      outer.length = shadow.length;
    }
    shadow.finished = !more;
    Engine::complete(loop_, outer);
  }

  // Shadows go after the real backend, which may name them until it ends.
  std::vector<std::unique_ptr<Shadow>> shadows_;
  std::unique_ptr<Backend> inner_;
  FaultPlan plan_;
  // Failed one-shot operations, completed on the next wait.
  std::vector<Operation*> failed_;
  std::vector<Operation*> delivering_;
};

}  // namespace

std::unique_ptr<Backend> inject_faults(Loop& loop, std::unique_ptr<Backend> backend,
                                       TimerHeap& timers) {
  // Read when each loop starts, so that a test may change it between loops.
  const char* text = std::getenv("SALAM_FAULTS");
  if (text == nullptr || *text == '\0') return backend;
  FaultPlan plan = parse_fault_plan(text);
  if (plan[FaultKind::timer]) timers.inject_faults(*plan[FaultKind::timer]);
  if (!plan[FaultKind::accept] && !plan[FaultKind::read] && !plan[FaultKind::write] &&
      !plan[FaultKind::buffer]) {
    return backend;  // timers only: the backend has nothing to do
  }
  return std::make_unique<FaultBackend>(loop, std::move(backend), plan);
}

}  // namespace salam::detail
