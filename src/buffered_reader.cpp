#include <algorithm>
#include <cassert>
#include <cstring>
#include <limits>
#include <new>

#include <salam/buffered_reader.hpp>
#include <salam/loop.hpp>

#include "engine.hpp"

namespace salam {

namespace {

constexpr std::size_t kUnlimited = std::numeric_limits<std::size_t>::max();
// The first allocation for a message that spans reads: most lines are short.
constexpr std::size_t kMinimumCapacity = 256;

std::string_view as_text(std::span<const std::byte> bytes) noexcept {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

std::error_code out_of_memory() noexcept {
  return std::make_error_code(std::errc::not_enough_memory);
}

}  // namespace

std::span<const std::byte> BufferedReader::peek() const noexcept {
  // Unreturned bytes are in one place at a time: memory of the reader's own
  // holds some only while a message spans reads, and the loop's buffer is
  // given back before each read.
  if (own_size_ > own_returned_) {
    assert(input_rest() == 0);
    return {own_.get() + own_returned_, own_size_ - own_returned_};
  }
  return input_bytes();
}

Task<Result<std::string_view>> BufferedReader::read_until(std::string_view delimiter,
                                                          std::size_t max_length,
                                                          Deadline deadline) {
  drop_returned();
  if (delimiter.empty()) co_return std::make_error_code(std::errc::invalid_argument);
  const std::size_t limit =
      max_length > kUnlimited - delimiter.size() ? kUnlimited : max_length + delimiter.size();
  // Bytes of own memory known not to start a delimiter: each byte is
  // searched once per call however slowly the line trickles in.
  std::size_t searched = 0;
  for (;;) {
    if (own_size_ == 0) {
      // The common case: the line is in the loop's buffer; return it from there.
      const std::string_view rest = as_text(input_bytes());
      const std::size_t at = rest.substr(0, limit).find(delimiter);
      if (at != std::string_view::npos) {
        leave_scarce_pool();  // may move the bytes
        const std::string_view line = as_text(input_bytes()).substr(0, at);
        input_offset_ += at + delimiter.size();
        co_return line;
      }
      if (rest.size() >= limit) {
        drop_everything();
        co_return std::make_error_code(std::errc::message_size);
      }
      // The start of a line that spans reads: copy it, so that the loop's
      // buffer goes back before the wait for the rest.
      if (!keep(input_bytes(), limit)) {
        drop_everything();
        co_return out_of_memory();
      }
      input_offset_ = input_.size();
      searched = own_size_ >= delimiter.size() ? own_size_ - delimiter.size() + 1 : 0;
    } else {
      const std::string_view own = as_text({own_.get(), own_size_});
      const std::size_t at = own.find(delimiter, searched);
      if (at != std::string_view::npos && at <= max_length) {
        // Bytes past the delimiter that were copied from the loop's buffer
        // go back to it: the next call can return them from there, without
        // memory of its own.
        const std::size_t back = std::min(own_size_ - (at + delimiter.size()), own_from_input_);
        own_size_ -= back;
        input_offset_ -= back;
        own_from_input_ -= back;
        own_returned_ = at + delimiter.size();
        co_return own.substr(0, at);
      }
      if (own_size_ >= limit) {
        drop_everything();
        co_return std::make_error_code(std::errc::message_size);
      }
      searched = own_size_ >= delimiter.size() ? own_size_ - delimiter.size() + 1 : 0;
      if (input_rest() > 0) {
        // Never more than the cap: the rest stays in the loop's buffer.
        const auto chunk = input_bytes().first(std::min(input_rest(), limit - own_size_));
        if (!keep(chunk, limit)) {
          drop_everything();
          co_return out_of_memory();
        }
        input_offset_ += chunk.size();
        own_from_input_ += chunk.size();
        continue;
      }
    }
    release_input();
    if (auto error = take(
            co_await connection_->read(detail::Engine::buffer_size(connection_->loop()), deadline)))
      co_return error;
  }
}

Task<Result<std::span<const std::byte>>> BufferedReader::read_exactly(std::size_t count,
                                                                      Deadline deadline) {
  drop_returned();
  if (count == 0) co_return std::span<const std::byte>{};
  for (;;) {
    if (own_size_ == 0) {
      if (input_rest() >= count) {
        leave_scarce_pool();
        const auto bytes = input_bytes().first(count);
        input_offset_ += count;
        co_return bytes;
      }
      if (!keep(input_bytes(), count)) {
        drop_everything();
        co_return out_of_memory();
      }
      input_offset_ = input_.size();
    } else {
      if (own_size_ >= count) {
        own_returned_ = count;
        co_return std::span<const std::byte>(own_.get(), count);
      }
      if (input_rest() > 0) {
        const auto chunk = input_bytes().first(std::min(input_rest(), count - own_size_));
        if (!keep(chunk, count)) {
          drop_everything();
          co_return out_of_memory();
        }
        input_offset_ += chunk.size();
        continue;
      }
    }
    release_input();
    if (auto error = take(
            co_await connection_->read(detail::Engine::buffer_size(connection_->loop()), deadline)))
      co_return error;
  }
}

void BufferedReader::drop_returned() noexcept {
  own_from_input_ = 0;
  if (own_returned_ == 0) return;
  const std::size_t rest = own_size_ - own_returned_;
  own_returned_ = 0;
  if (rest == 0) {
    // Everything consumed: the memory goes back, so that an idle reader
    // holds none.
    own_.reset();
    own_size_ = 0;
    own_capacity_ = 0;
    return;
  }
  std::memmove(own_.get(), own_.get() + (own_size_ - rest), rest);
  own_size_ = rest;
}

void BufferedReader::drop_everything() noexcept {
  release_input();
  own_.reset();
  own_size_ = 0;
  own_capacity_ = 0;
  own_returned_ = 0;
}

bool BufferedReader::keep(std::span<const std::byte> bytes, std::size_t limit) noexcept {
  if (bytes.empty()) return true;
  const std::size_t needed = own_size_ + bytes.size();
  if (needed > own_capacity_) {
    // Grow by doubling, but never past the cap: memory follows what has
    // arrived, and a peer that sends a long line without its delimiter
    // cannot make the reader allocate more than the cap.
    std::size_t capacity = std::max({needed, own_capacity_ * 2, kMinimumCapacity});
    capacity = std::min(capacity, std::max(limit, needed));
    std::unique_ptr<std::byte[]> grown(new (std::nothrow) std::byte[capacity]);
    if (!grown) return false;
    if (own_size_ > 0) std::memcpy(grown.get(), own_.get(), own_size_);
    own_ = std::move(grown);
    own_capacity_ = capacity;
  }
  std::memcpy(own_.get() + own_size_, bytes.data(), bytes.size());
  own_size_ = needed;
  return true;
}

void BufferedReader::leave_scarce_pool() noexcept {
  if (!detail::Engine::buffers_scarce(connection_->loop())) return;
  try {
    input_.detach();
  } catch (const std::bad_alloc&) {
    // Keep the loop's buffer: the pool is short, not exhausted.
  }
}

void BufferedReader::release_input() noexcept {
  input_.release();
  input_offset_ = 0;
  own_from_input_ = 0;
}

std::error_code BufferedReader::take(Result<InputBuffer> input) noexcept {
  if (!input) return input.error();
  if (input->empty()) return end_of_file();
  input_ = std::move(*input);
  input_offset_ = 0;
  return {};
}

}  // namespace salam
