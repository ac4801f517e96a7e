#include "timer_heap.hpp"

#include <algorithm>
#include <cassert>
#include <new>

namespace salam::detail {

TimerHeap::TimerHeap() {
  heap_.reserve(64);
}

bool TimerHeap::reserve_one(bool essential) noexcept {
  const std::size_t keep_free = essential ? 0 : kSpare;
  if (heap_.size() + keep_free < heap_.capacity()) {
    return essential || !faults_ || !faults_->fails();
  }
  if (!essential && faults_ && faults_->fails()) return false;
  try {
    heap_.reserve(heap_.capacity() * 2);
    return true;
  } catch (const std::bad_alloc&) {
    return false;
  }
}

void TimerHeap::push(Operation& op) noexcept {
  assert(heap_.size() < heap_.capacity() && "reserve_one() first");
  assert(op.heap_index == Operation::kNotInHeap);
  heap_.push_back(&op);
  op.heap_index = static_cast<std::uint32_t>(heap_.size() - 1);
  sift_up(heap_.size() - 1);
}

void TimerHeap::remove(Operation& op) noexcept {
  if (op.heap_index == Operation::kNotInHeap) return;
  std::size_t index = op.heap_index;
  assert(index < heap_.size() && heap_[index] == &op);
  op.heap_index = Operation::kNotInHeap;
  Operation* last = heap_.back();
  heap_.pop_back();
  if (index == heap_.size()) return;
  place(index, last);
  // The moved element may belong above or below its new slot.
  if (index > 0 && last->deadline < heap_[(index - 1) / 2]->deadline) {
    sift_up(index);
  } else {
    sift_down(index);
  }
}

Operation* TimerHeap::pop() noexcept {
  if (heap_.empty()) return nullptr;
  Operation* first = heap_.front();
  remove(*first);
  return first;
}

void TimerHeap::sift_up(std::size_t index) noexcept {
  Operation* op = heap_[index];
  while (index > 0) {
    std::size_t parent = (index - 1) / 2;
    if (!(op->deadline < heap_[parent]->deadline)) break;
    place(index, heap_[parent]);
    index = parent;
  }
  place(index, op);
}

void TimerHeap::sift_down(std::size_t index) noexcept {
  Operation* op = heap_[index];
  const std::size_t size = heap_.size();
  for (;;) {
    std::size_t child = 2 * index + 1;
    if (child >= size) break;
    if (child + 1 < size && heap_[child + 1]->deadline < heap_[child]->deadline) ++child;
    if (!(heap_[child]->deadline < op->deadline)) break;
    place(index, heap_[child]);
    index = child;
  }
  place(index, op);
}

}  // namespace salam::detail
