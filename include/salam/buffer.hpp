// InputBuffer: bytes that one read received, in a buffer lent by the
// loop's pool. Destroying the InputBuffer gives the buffer back, so keep it
// only as long as the bytes are needed (not across a wait for more input,
// or idle connections would hold memory again).
//
// Threading: use and destroy on the loop's thread. Move-only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <utility>

namespace salam {

class Connection;
class Loop;

class InputBuffer {
 public:
  InputBuffer() noexcept = default;
  // Bytes in memory of their own (input handed back with Connection::unread).
  InputBuffer(std::unique_ptr<std::byte[]> bytes, std::size_t size) noexcept
      : owned_(std::move(bytes)), data_(owned_.get()), size_(size) {}
  InputBuffer(InputBuffer&& other) noexcept { take(other); }
  InputBuffer& operator=(InputBuffer&& other) noexcept {
    if (this != &other) {
      release();
      take(other);
    }
    return *this;
  }
  InputBuffer(const InputBuffer&) = delete;
  InputBuffer& operator=(const InputBuffer&) = delete;
  ~InputBuffer() { release(); }

  // Empty means the peer closed its side (end of file).
  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }
  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  std::string_view text() const noexcept { return {reinterpret_cast<const char*>(data_), size_}; }

  // Gives the buffer back now.
  void release() noexcept;
  // Moves the bytes out of the pool into memory of their own, and gives
  // the pooled buffer back. Throws std::bad_alloc (and stays as it was).
  void detach();

 private:
  friend class Connection;  // lends pooled buffers
  // Bytes in buffer `id` of `loop`'s pool.
  InputBuffer(Loop* loop, std::uint16_t id, const std::byte* data, std::size_t size) noexcept
      : loop_(loop), id_(id), data_(data), size_(size) {}

  void take(InputBuffer& other) noexcept {
    loop_ = std::exchange(other.loop_, nullptr);
    id_ = other.id_;
    owned_ = std::move(other.owned_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }

  Loop* loop_ = nullptr;  // set when the bytes are in the loop's pool
  std::uint16_t id_ = 0;
  std::unique_ptr<std::byte[]> owned_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace salam
