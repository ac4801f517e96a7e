// Event: a flag that tasks of one loop can wait for, with a deadline.
//
// Once set, an Event stays set (until reset()); waiting on a set event
// completes at once. Waiters wake on the loop's next turn after set().
//
// Threading: one loop; set() and wait() on its thread only (from another
// thread, post() the set()).
#pragma once

#include <coroutine>
#include <vector>

#include <salam/detail/operation.hpp>
#include <salam/loop.hpp>
#include <salam/time.hpp>

namespace salam {

class Event {
 public:
  explicit Event(Loop& loop) noexcept : loop_(&loop) {}
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  bool is_set() const noexcept { return set_; }
  void set() noexcept {
    if (set_) return;
    set_ = true;
    // Waking is cancelling the waiter's sleep; it completes next turn.
    for (detail::Operation* waiter : waiters_)
      loop_->cancel(*waiter);
  }
  void reset() noexcept { set_ = false; }

  struct Awaiter : detail::Operation {
    Event* event;
    Deadline deadline;
    bool await_ready() const noexcept { return event->set_; }
    bool await_suspend(std::coroutine_handle<> handle) noexcept {
      code = detail::OpCode::sleep;
      waiter = handle;
      on_complete = [](detail::Operation& op) {
        auto& self = static_cast<Awaiter&>(op);
        std::erase(self.event->waiters_, &op);
        op.waiter.resume();
      };
      if (event->loop_->start(*this, deadline)) return false;
      event->waiters_.push_back(this);
      return true;
    }
    // True if the event was set; false if the deadline passed (or the loop
    // is cancelling everything) first.
    bool await_resume() const noexcept { return event->set_; }
  };

  Awaiter wait(Deadline deadline = Deadline::never()) noexcept {
    Awaiter awaiter;
    awaiter.event = this;
    awaiter.deadline = deadline;
    return awaiter;
  }

 private:
  Loop* loop_;
  bool set_ = false;
  std::vector<detail::Operation*> waiters_;
};

}  // namespace salam
