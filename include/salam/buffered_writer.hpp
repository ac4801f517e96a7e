// BufferedWriter: replies gathered in memory and sent together, so that a
// handler's small writes become one system call.
//
//   salam::BufferedWriter writer(client);
//   writer.append("HTTP/1.0 200 OK\r\n");
//   writer.append(body);
//   if (auto error = co_await writer.flush(10s)) ...
//
// Appending never writes by itself: nothing is sent until flush(), which
// sends everything appended so far in one Connection::write_all(). Nor does
// the writer bound its memory: a caller that appends without flushing
// decides how much it holds.
//
// Memory: the bytes live in a std::string. After a flush it gives its heap
// memory back and keeps only the string's inline storage (15 bytes with
// libstdc++, inside the writer itself), so that an idle connection holds
// nothing; a short reply fits there with no allocation at all. The cost: a
// larger reply allocates afresh on every flush.
//
// Threading: use the writer on its connection's loop only, one flush at a
// time (it is the connection's one write in flight). Lifetime: it does not
// own the connection and must not outlive it; it is neither copied nor
// moved while a flush is in flight.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include <salam/connection.hpp>
#include <salam/task.hpp>
#include <salam/time.hpp>

namespace salam {

class BufferedWriter {
 public:
  explicit BufferedWriter(Connection& connection) noexcept : connection_(&connection) {}
  BufferedWriter(const BufferedWriter&) = delete;
  BufferedWriter& operator=(const BufferedWriter&) = delete;

  // Copies the bytes in; throws std::bad_alloc.
  void append(std::string_view text) { pending_.append(text); }
  void append(std::span<const std::byte> bytes) {
    pending_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }

  // Sends everything appended, in one write_all. Bytes appended while the
  // flush is in flight wait for the next one. On failure (timed_out(),
  // cancelled(), a reset) the bytes of this flush are dropped: how many of
  // them went out is unknown, so the stream cannot be resumed.
  Task<std::error_code> flush(Deadline deadline = Deadline::never());

  // Bytes appended and not yet handed to a flush.
  std::size_t pending() const noexcept { return pending_.size(); }
  // Whether the writer holds heap memory (more than its inline storage).
  bool holds_memory() const noexcept { return pending_.capacity() > std::string().capacity(); }

 private:
  Connection* connection_;
  std::string pending_;
};

}  // namespace salam
