// Event: a flag that tasks of one loop can wait for, with a deadline.
//
// Once set, an Event stays set (until reset()); waiting on a set event
// completes at once. Waiters wake on the loop's next turn after set().
//
// Threading: one loop; set() and wait() on its thread only (from another
// thread, post() the set()). Lifetime: an Event must outlive its waiters
// until they have resumed (the turn after set()); await each wait() once.
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
  void set() noexcept;
  void reset() noexcept { set_ = false; }

  class [[nodiscard]] Awaiter {
   public:
    bool await_ready() const noexcept { return event_->set_; }
    bool await_suspend(std::coroutine_handle<> handle) noexcept;
    // True if the event was set; false if the deadline passed (or the loop
    // is cancelling everything) first.
    bool await_resume() const noexcept { return event_->set_; }

   private:
    friend class Event;
    Awaiter(Event& event, Deadline deadline) noexcept : event_(&event), deadline_(deadline) {}
    static void on_wake(detail::Operation& op) noexcept;

    struct Operation : detail::Operation {
      Awaiter* self = nullptr;
    };

    Operation op_;
    Event* event_;
    Deadline deadline_;
  };

  Awaiter wait(Deadline deadline = Deadline::never()) noexcept { return Awaiter(*this, deadline); }

 private:
  Loop* loop_;
  bool set_ = false;
  std::vector<Awaiter*> waiters_;
};

}  // namespace salam
