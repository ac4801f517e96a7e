// Task<T>: a lazy, owned coroutine.
//
// - Lazy: creating a Task runs nothing; the body starts when the task is
//   awaited (or handed to a TaskScope, which starts it).
// - Owned: a Task is move-only and destroys its coroutine frame in its
//   destructor. Destroy a task only when it has not started or has
//   finished; a task suspended in an operation is finished by completing
//   or cancelling that operation, never by destruction.
// - Bounded stack: a task that finishes before its first suspension
//   returns to its awaiter without a nested resume, and one that finishes
//   later resumes its awaiter by symmetric transfer, so long chains of
//   synchronous completions do not grow the stack — in unoptimised builds
//   too, where the compiler may not turn symmetric transfer into a jump.
// - Frames are recycled per thread (no heap allocation per task once warm).
// - Exceptions thrown in the body are stored and rethrown to the awaiter;
//   a TaskScope reports them instead (see scope.hpp).
//
// Threading: a task runs on the thread that resumes it; in salam that is
// always the thread of the shard that owns the connection.
#pragma once

#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <utility>

namespace salam {

template <typename T = void>
class Task;

class TaskScope;

namespace detail {

// Coroutine frames come from a per-thread cache of freed frames (see
// src/frame_allocator.cpp), so that a connection's coroutines do not go to
// the heap once the server is warm.
void* allocate_frame(std::size_t size);
void free_frame(void* frame, std::size_t size) noexcept;

// Logs an exception that escaped a spawned task whose scope has no handler.
void report_unhandled_task_exception(const std::exception_ptr& error) noexcept;

// Called by a TaskScope's tasks when they finish; defined in scope.hpp.
std::coroutine_handle<> task_scope_finished(TaskScope& scope, std::coroutine_handle<> task,
                                            std::exception_ptr error) noexcept;

struct PromiseBase {
  std::coroutine_handle<> continuation;
  TaskScope* scope = nullptr;
  std::exception_ptr exception;
  // While the awaiter's await_suspend is still running the task (`starting`),
  // finishing only records it (`finished_inline`) instead of resuming.
  enum class Start : unsigned char { idle, starting, finished_inline } start = Start::idle;

  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    template <typename Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> self) noexcept {
      PromiseBase& promise = self.promise();
      if (promise.continuation) {
        if (promise.start == Start::starting) {
          promise.start = Start::finished_inline;
          return std::noop_coroutine();
        }
        return promise.continuation;
      }
      if (promise.scope != nullptr) {
        return task_scope_finished(*promise.scope, self, std::move(promise.exception));
      }
      return std::noop_coroutine();
    }
    void await_resume() const noexcept {}
  };

  static void* operator new(std::size_t size) { return allocate_frame(size); }
  static void operator delete(void* frame, std::size_t size) noexcept { free_frame(frame, size); }

  std::suspend_always initial_suspend() const noexcept { return {}; }
  FinalAwaiter final_suspend() const noexcept { return {}; }
  void unhandled_exception() noexcept { exception = std::current_exception(); }
};

template <typename T>
struct Promise : PromiseBase {
  std::optional<T> value;
  Task<T> get_return_object() noexcept;
  template <typename U>
  void return_value(U&& result) {
    value.emplace(std::forward<U>(result));
  }
  T take() {
    if (exception) std::rethrow_exception(exception);
    return std::move(*value);
  }
};

template <>
struct Promise<void> : PromiseBase {
  Task<void> get_return_object() noexcept;
  void return_void() const noexcept {}
  void take() const {
    if (exception) std::rethrow_exception(exception);
  }
};

}  // namespace detail

template <typename T>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::Promise<T>;
  using Handle = std::coroutine_handle<promise_type>;

  Task() noexcept = default;
  explicit Task(Handle handle) noexcept : handle_(handle) {}
  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() { reset(); }

  bool valid() const noexcept { return static_cast<bool>(handle_); }
  bool done() const noexcept { return handle_ && handle_.done(); }

  // Awaiting a task starts it and resumes the awaiter when it finishes,
  // with its value (or its exception rethrown).
  auto operator co_await() && noexcept {
    struct Awaiter {
      Handle handle;
      bool await_ready() const noexcept { return false; }
      bool await_suspend(std::coroutine_handle<> awaiter) noexcept {
        auto& promise = handle.promise();
        promise.continuation = awaiter;
        promise.start = detail::PromiseBase::Start::starting;
        handle.resume();
        if (promise.start == detail::PromiseBase::Start::finished_inline) return false;
        promise.start = detail::PromiseBase::Start::idle;  // it suspended; it resumes us at its end
        return true;
      }
      T await_resume() { return handle.promise().take(); }
    };
    return Awaiter{handle_};
  }

  // Gives up ownership of the frame; for TaskScope and tests' drivers.
  Handle release() noexcept { return std::exchange(handle_, {}); }

 private:
  void reset() noexcept {
    if (handle_) handle_.destroy();
    handle_ = {};
  }
  Handle handle_;
};

namespace detail {
template <typename T>
Task<T> Promise<T>::get_return_object() noexcept {
  return Task<T>{std::coroutine_handle<Promise<T>>::from_promise(*this)};
}
inline Task<void> Promise<void>::get_return_object() noexcept {
  return Task<void>{std::coroutine_handle<Promise<void>>::from_promise(*this)};
}
}  // namespace detail

}  // namespace salam
