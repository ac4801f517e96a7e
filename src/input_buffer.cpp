#include <algorithm>
#include <memory>

#include <salam/buffer.hpp>

#include "engine.hpp"

namespace salam {

void InputBuffer::detach() {
  if (loop_ == nullptr) return;
  auto copy = std::make_unique_for_overwrite<std::byte[]>(size_);
  std::copy_n(data_, size_, copy.get());
  const std::size_t size = size_;
  release();
  *this = InputBuffer(std::move(copy), size);
}

void InputBuffer::release() noexcept {
  if (loop_ != nullptr) detail::Engine::recycle_buffer(*loop_, id_);
  loop_ = nullptr;
  owned_.reset();
  data_ = nullptr;
  size_ = 0;
}

}  // namespace salam
