// ConnectionBudget: a cap on connections open at once, over all shards.
//
// One atomic counter: taking and giving back a place is one atomic add
// each, with no lock. (Per-shard budgets would avoid sharing the counter's
// cache line, but a global cap split per shard refuses connections on a
// busy shard while another has room.)
//
// Threading: all functions are thread-safe.
#pragma once

#include <atomic>
#include <cstddef>
#include <utility>

namespace salam {

class ConnectionBudget {
 public:
  explicit ConnectionBudget(std::size_t limit) noexcept : limit_(limit) {}

  // Takes a place; false when all are taken.
  bool try_acquire() noexcept {
    const std::size_t previous = used_.fetch_add(1, std::memory_order_relaxed);
    if (previous < limit_.load(std::memory_order_relaxed)) return true;
    used_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  void release() noexcept { used_.fetch_sub(1, std::memory_order_relaxed); }

  // A new limit applies to places taken from now on.
  void set_limit(std::size_t limit) noexcept { limit_.store(limit, std::memory_order_relaxed); }
  std::size_t limit() const noexcept { return limit_.load(std::memory_order_relaxed); }
  std::size_t used() const noexcept { return used_.load(std::memory_order_relaxed); }

  // A place held for as long as the ticket lives.
  class Ticket {
   public:
    Ticket() noexcept = default;
    explicit Ticket(ConnectionBudget* budget) noexcept : budget_(budget) {}
    Ticket(Ticket&& other) noexcept : budget_(std::exchange(other.budget_, nullptr)) {}
    Ticket& operator=(Ticket&&) = delete;
    ~Ticket() {
      if (budget_ != nullptr) budget_->release();
    }
    explicit operator bool() const noexcept { return budget_ != nullptr; }

   private:
    ConnectionBudget* budget_ = nullptr;
  };
  Ticket take() noexcept { return Ticket(try_acquire() ? this : nullptr); }

 private:
  std::atomic<std::size_t> used_{0};
  std::atomic<std::size_t> limit_;
};

}  // namespace salam
