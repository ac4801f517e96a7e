// TimerHeap: the pending deadlines of one loop, earliest first.
//
// A binary min-heap of operations keyed by Operation::deadline. Each
// operation remembers its slot (heap_index), so removing one that finished
// before its deadline — the common case — is O(log n) with no search.
//
// Threading: one per loop, used on its thread only. Does not own the
// operations.
#pragma once

#include <cstddef>
#include <optional>
#include <vector>

#include <salam/detail/operation.hpp>

#include "io/fault_plan.hpp"

namespace salam::detail {

class TimerHeap {
 public:
  // Room for the first timers and the spare slots (may throw bad_alloc).
  TimerHeap();

  bool empty() const noexcept { return heap_.empty(); }
  std::size_t size() const noexcept { return heap_.size(); }
  Operation* top() const noexcept { return heap_.empty() ? nullptr : heap_.front(); }

  // Makes room for one more push, so that push cannot fail; false when
  // memory runs out. Ordinary timers leave kSpare slots free; essential
  // ones (Operation::essential) may take them, and no injected fault
  // fails them while there is room.
  bool reserve_one(bool essential = false) noexcept;
  static constexpr std::size_t kSpare = 8;
  // The fault-injection seam (inject_faults in io/backend.hpp): from now
  // on `schedule` also decides which reservations fail, as if memory had
  // run out. Timers are armed here, out of the backend's sight.
  void inject_faults(const FaultSchedule& schedule) noexcept { faults_ = schedule; }
  void push(Operation& op) noexcept;
  void remove(Operation& op) noexcept;
  Operation* pop() noexcept;

 private:
  void sift_up(std::size_t index) noexcept;
  void sift_down(std::size_t index) noexcept;
  void place(std::size_t index, Operation* op) noexcept {
    heap_[index] = op;
    op->heap_index = static_cast<std::uint32_t>(index);
  }

  std::vector<Operation*> heap_;
  std::optional<FaultSchedule> faults_;
};

}  // namespace salam::detail
