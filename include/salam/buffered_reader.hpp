// BufferedReader: messages out of a connection's byte stream — a line up to
// a delimiter, or an exact number of bytes — with a cap on their length.
//
//   salam::BufferedReader reader(client);
//   auto line = co_await reader.read_until("\n", 1024, 30s);
//   if (!line) ...  // message_size, end_of_file(), timed_out(), cancelled()
//
// A returned view (the bytes of one message) stays valid until the next
// call on the reader, or its destruction.
//
// Memory: a reader waiting for the first byte of the next message holds no
// buffer. It reads with Connection::read(), whose bytes arrive in a buffer
// lent by the loop. A message found whole in that buffer is returned from
// there, without a copy, and the reader keeps the buffer until its next
// call, which returns any further messages already in it (a pipelining
// client) without reading again. Only a message that spans reads is copied
// into memory of the reader's own — at most its cap, max_length plus the
// delimiter (or count), besides the one read's buffer — and that memory is
// freed at the next call, once the message is consumed. The cost: an
// allocation and a copy for each message that spans reads. The gain: an
// idle connection keeps nothing. While the loop's buffers run short, a
// buffer kept between calls is moved into memory of the reader's own first
// (as Connection::read does), so that a caller slow to come back cannot
// starve other connections' reads.
//
// Errors: the connection's errors pass through (timed_out(), cancelled(),
// a reset); the bytes of an unfinished message then stay buffered, and the
// next call goes on with them. At end of file before a whole message the
// call returns end_of_file(), and an unfinished message stays buffered too:
// peek() shows it. Running out of memory returns not_enough_memory and drops
// what was buffered.
//
// Threading: use the reader on its connection's loop only, one call at a
// time. Lifetime: it does not own the connection and must not outlive it;
// it is neither copied nor moved (a call in flight points to it).
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string_view>

#include <salam/buffer.hpp>
#include <salam/connection.hpp>
#include <salam/result.hpp>
#include <salam/task.hpp>
#include <salam/time.hpp>

namespace salam {

class BufferedReader {
 public:
  explicit BufferedReader(Connection& connection) noexcept : connection_(&connection) {}
  BufferedReader(const BufferedReader&) = delete;
  BufferedReader& operator=(const BufferedReader&) = delete;

  // The bytes before the next `delimiter` (not empty); the delimiter is
  // consumed and not returned. A line may be up to `max_length` bytes long,
  // delimiter not counted: once more have arrived without a delimiter, the
  // call returns std::errc::message_size and drops everything buffered (the
  // stream is then in the middle of a line; the usual answer is an error
  // reply and closing). A delimiter split across reads is found.
  Task<Result<std::string_view>> read_until(std::string_view delimiter, std::size_t max_length,
                                            Deadline deadline = Deadline::never());

  // Exactly `count` bytes; end_of_file() if the peer closes first.
  Task<Result<std::span<const std::byte>>> read_exactly(std::size_t count,
                                                        Deadline deadline = Deadline::never());

  // Bytes read ahead but not returned yet.
  std::size_t buffered() const noexcept { return own_size_ - own_returned_ + input_rest(); }
  // Those bytes, valid until the next call (after end_of_file(), the
  // unfinished message).
  std::span<const std::byte> peek() const noexcept;

  // Whether the reader holds memory for bytes: a buffer lent by the loop or
  // memory of its own. False whenever it waits for input with nothing
  // buffered.
  bool holds_memory() const noexcept { return input_.size() > 0 || own_ != nullptr; }
  // Bytes of memory of its own (not counting a buffer lent by the loop).
  std::size_t own_capacity() const noexcept { return own_capacity_; }

 private:
  // Frees what the last call returned.
  void drop_returned() noexcept;
  void drop_everything() noexcept;
  // Appends bytes to memory of the reader's own, growing it up to `limit`;
  // false if memory ran out.
  bool keep(std::span<const std::byte> bytes, std::size_t limit) noexcept;
  // Before a view into the loop's buffer is handed out: moves the buffer
  // out of the pool if the pool runs short.
  void leave_scarce_pool() noexcept;
  // Gives the loop's buffer back (before waiting for input).
  void release_input() noexcept;
  // Takes a read's outcome: its bytes, or the error to return.
  std::error_code take(Result<InputBuffer> input) noexcept;

  std::size_t input_rest() const noexcept { return input_.size() - input_offset_; }
  std::span<const std::byte> input_bytes() const noexcept {
    return input_.bytes().subspan(input_offset_);
  }

  Connection* connection_;
  // The last read's bytes, from input_offset_ on not yet returned.
  InputBuffer input_;
  std::size_t input_offset_ = 0;
  // Memory of the reader's own: the part of a message that spans reads.
  // Its first own_returned_ bytes are the message the last call returned.
  std::unique_ptr<std::byte[]> own_;
  std::size_t own_size_ = 0;
  std::size_t own_capacity_ = 0;
  std::size_t own_returned_ = 0;
  // The last own_from_input_ bytes of own_ are copies of the bytes just
  // before input_offset_ (given back when a delimiter is found before them).
  std::size_t own_from_input_ = 0;
};

}  // namespace salam
