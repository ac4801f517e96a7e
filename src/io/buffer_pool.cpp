#include "io/buffer_pool.hpp"

#include <algorithm>
#include <new>

namespace salam::detail {

BufferPool::BufferPool(std::uint32_t buffer_size, std::uint16_t initial, std::uint16_t max)
    : buffer_size_(buffer_size), max_(std::max<std::uint32_t>(max, 1)) {
  free_.reserve(max_);
  while (count_ < std::min<std::uint32_t>(initial, max_)) {
    auto added = grow();
    if (!added) break;
    for (std::uint16_t i = 0; i < added->count; ++i)
      put(added->first + i);
  }
}

std::optional<BufferPool::Added> BufferPool::grow() {
  if (count_ >= max_) return std::nullopt;
  // Storage is allocated in whole blocks so that data() is two shifts and
  // a load; a block's buffers are numbered consecutively.
  auto first = static_cast<std::uint16_t>(count_);
  auto count = static_cast<std::uint16_t>(std::min<std::uint32_t>(kBlock, max_ - count_));
  if (first % kBlock == 0) {
    // for_overwrite: the pages are not touched until a read lands in them.
    // Out of memory is the cap come early: reads get ENOBUFS.
    try {
      blocks_.reserve(blocks_.size() + 1);
      blocks_.push_back(
          std::make_unique_for_overwrite<std::byte[]>(std::size_t{kBlock} * buffer_size_));
    } catch (const std::bad_alloc&) {
      return std::nullopt;
    }
  }
  count_ += count;
  return Added{first, count};
}

std::optional<std::uint16_t> BufferPool::take() {
  if (free_.empty()) {
    auto added = grow();
    if (!added) return std::nullopt;
    for (std::uint16_t i = added->count; i-- > 1;)
      put(added->first + i);
    return added->first;
  }
  auto id = free_.back();
  free_.pop_back();
  return id;
}

}  // namespace salam::detail
