// TaskScope: owns tasks that run concurrently with their spawner.
//
// spawn() starts a task at once and keeps it until it finishes; the frame is
// freed when it does. join() is an awaitable that completes when no task of
// the scope is left, which is how a shard waits for its connections at
// shutdown. There is no detached work in salam: every concurrent task
// belongs to a scope that somebody joins.
//
// An exception that escapes a spawned task is contained: it is passed to
// the scope's error handler (by default: logged) and the other tasks go on.
//
// Threading: one scope per thread; spawn, join and task completion all
// happen on that thread. Lifetime: the scope must outlive its tasks;
// destroying it while tasks run ends the process with a message, in every
// build type.
#pragma once

#include <coroutine>
#include <cstddef>
#include <exception>
#include <functional>

#include <salam/detail/contract.hpp>
#include <salam/task.hpp>

namespace salam {

class TaskScope {
 public:
  using ErrorHandler = std::function<void(std::exception_ptr)>;

  TaskScope() = default;
  explicit TaskScope(ErrorHandler on_error) : on_error_(std::move(on_error)) {}
  TaskScope(const TaskScope&) = delete;
  TaskScope& operator=(const TaskScope&) = delete;
  ~TaskScope() {
    detail::expects(active_ == 0,
                    "a TaskScope was destroyed with tasks still running (join it first)");
  }

  // Starts `task` now; it runs until its first suspension before spawn
  // returns.
  void spawn(Task<> task) noexcept {
    auto handle = task.release();
    if (!handle) return;
    handle.promise().scope = this;
    ++active_;
    handle.resume();
  }

  std::size_t active() const noexcept { return active_; }

  // Called each time the last running task finishes (active() becomes 0).
  void on_idle(std::function<void()> callback) { on_idle_ = std::move(callback); }

  // Completes when active() is 0. One joiner at a time.
  [[nodiscard]] auto join() noexcept {
    struct [[nodiscard]] Awaiter {
      TaskScope& scope;
      bool await_ready() const noexcept { return scope.active_ == 0; }
      void await_suspend(std::coroutine_handle<> joiner) noexcept {
        detail::expects(!scope.joiner_, "TaskScope::join has one awaiter at a time");
        scope.joiner_ = joiner;
      }
      void await_resume() const noexcept {}
    };
    return Awaiter{*this};
  }

 private:
  friend std::coroutine_handle<> detail::task_scope_finished(TaskScope&, std::coroutine_handle<>,
                                                             std::exception_ptr) noexcept;

  ErrorHandler on_error_;
  std::function<void()> on_idle_;
  std::size_t active_ = 0;
  std::coroutine_handle<> joiner_;
};

namespace detail {

// Runs inside the finished task's final suspension: the frame may be
// destroyed here, and the joiner (if this was the last task) is resumed by
// symmetric transfer.
inline std::coroutine_handle<> task_scope_finished(TaskScope& scope, std::coroutine_handle<> task,
                                                   std::exception_ptr error) noexcept {
  task.destroy();
  if (error) {
    if (scope.on_error_) {
      try {
        scope.on_error_(std::move(error));
      } catch (...) {  // an error handler that throws must not take the shard down
      }
    } else {
      report_unhandled_task_exception(error);
    }
  }
  if (--scope.active_ == 0) {
    if (scope.on_idle_) scope.on_idle_();
    if (scope.joiner_) return std::exchange(scope.joiner_, {});
  }
  return std::noop_coroutine();
}

}  // namespace detail
}  // namespace salam
