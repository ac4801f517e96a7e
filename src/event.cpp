#include <salam/event.hpp>

#include "engine.hpp"

namespace salam {

void Event::set() noexcept {
  if (set_) return;
  set_ = true;
  // Waking is cancelling the waiter's sleep; it completes next turn.
  for (Awaiter* waiter : waiters_)
    detail::Engine::cancel(*loop_, waiter->op_);
}

bool Event::Awaiter::await_suspend(std::coroutine_handle<> handle) noexcept {
  op_.code = detail::OpCode::sleep;
  op_.self = this;
  op_.waiter = handle;
  op_.on_complete = &Awaiter::on_wake;
  if (detail::Engine::start(*event_->loop_, op_, deadline_)) return false;
  // Out of memory for the list: the waiter still wakes at its deadline.
  try {
    event_->waiters_.push_back(this);
  } catch (const std::bad_alloc&) {
  }
  return true;
}

void Event::Awaiter::on_wake(detail::Operation& op) noexcept {
  Awaiter* self = static_cast<Operation&>(op).self;
  std::erase(self->event_->waiters_, self);
  op.waiter.resume();
}

}  // namespace salam
