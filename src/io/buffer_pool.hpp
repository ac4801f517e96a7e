// BufferPool: the receive buffers of one loop, lent to a read only from
// the moment data arrives until the reader is done with it.
//
// Buffers have one size and a 16-bit id. The pool starts small and grows
// in steps up to a cap; each step is one allocation that is kept until
// the loop ends. The epoll backend takes buffers from the free list here;
// the io_uring backend hands them to the kernel as a provided-buffer ring
// and uses only the storage and growth from this class.
//
// Threading: one per loop, used on its thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace salam::detail {

class BufferPool {
 public:
  BufferPool(std::uint32_t buffer_size, std::uint16_t initial, std::uint16_t max);

  std::uint32_t buffer_size() const noexcept { return buffer_size_; }
  std::uint32_t count() const noexcept { return count_; }
  std::uint32_t max() const noexcept { return max_; }
  // At the cap with fewer than an eighth of the buffers free to take.
  bool scarce(std::uint32_t free) const noexcept { return count_ >= max_ && free < max_ / 8; }
  std::uint32_t free_count() const noexcept { return static_cast<std::uint32_t>(free_.size()); }
  std::byte* data(std::uint16_t id) noexcept {
    return blocks_[id / kBlock].get() + static_cast<std::size_t>(id % kBlock) * buffer_size_;
  }

  // Adds up to one block of buffers; returns the first new id and how many,
  // or nothing at the cap. New buffers are not on the free list.
  struct Added {
    std::uint16_t first;
    std::uint16_t count;
  };
  std::optional<Added> grow();

  // Free list (epoll backend). take() grows the pool when empty.
  std::optional<std::uint16_t> take();
  void put(std::uint16_t id) { free_.push_back(id); }

  static constexpr std::uint16_t kBlock = 64;

 private:
  std::uint32_t buffer_size_;
  std::uint32_t count_ = 0;
  std::uint32_t max_;
  std::vector<std::unique_ptr<std::byte[]>> blocks_;
  std::vector<std::uint16_t> free_;
};

}  // namespace salam::detail
