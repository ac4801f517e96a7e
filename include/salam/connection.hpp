// Connection: one TCP connection, owned by the coroutine that serves it.
//
// A handler receives its Connection by value and so owns the socket; the
// socket closes when the Connection is destroyed or close() is called.
// Every operation returns its outcome as a value: a byte count, the bytes
// read, or an error_code — timed_out() when its deadline passed, and
// cancelled() when the server is shutting down after its drain deadline.
// A timed-out connection stays usable for closing.
//
// Memory: a connection waiting in read() holds no buffer; the bytes arrive
// in a buffer lent by the loop (see InputBuffer).
//
// Threading: use a connection only on the loop that created it, and keep
// at most one read and one write in flight at a time. The two operations
// live in the Connection itself (so that a coroutine waiting on it carries a
// few words, not an operation, in its frame): a Connection must not be
// moved while one is in flight.
#pragma once

#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <vector>

#include <salam/address.hpp>
#include <salam/buffer.hpp>
#include <salam/detail/operation.hpp>
#include <salam/loop.hpp>
#include <salam/result.hpp>
#include <salam/socket.hpp>
#include <salam/task.hpp>
#include <salam/time.hpp>

namespace salam {

namespace detail {
// Told when a connection's socket closes; the server uses it to count
// connections and to resume accepting after running out of descriptors.
class ConnectionObserver {
 public:
  virtual void connection_closed() noexcept = 0;

 protected:
  ~ConnectionObserver() = default;
};
}  // namespace detail

// How close_gracefully() waits for the peer: at most `timeout`, and at most
// `max_bytes` of further input read and thrown away.
struct LingerOptions {
  Duration timeout = std::chrono::seconds(5);
  std::size_t max_bytes = 64 * 1024;
};

class Connection {
 public:
  Connection(Loop& loop, FileDescriptor socket, std::optional<SocketAddress> peer = std::nullopt,
             detail::ConnectionObserver* observer = nullptr) noexcept;
  Connection(Connection&& other) noexcept;
  Connection& operator=(Connection&&) = delete;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { close(); }

  Loop& loop() const noexcept { return *loop_; }
  int fd() const noexcept { return socket_.get(); }
  bool is_open() const noexcept { return socket_.valid(); }
  // The remote end. IPv4 clients of a dual-stack listener appear as IPv4.
  const SocketAddress& peer() const noexcept;
  // Replaces the peer address (a PROXY protocol header names the real client).
  void set_peer(const SocketAddress& peer) noexcept { peer_ = peer; }
  std::optional<SocketAddress> local() const noexcept;

  // Bytes received and sent so far.
  std::uint64_t bytes_in() const noexcept { return bytes_in_; }
  std::uint64_t bytes_out() const noexcept { return bytes_out_; }

  // Caps on the deadline of every operation, for the whole connection: an
  // end of life, and a minimum transfer rate (bytes in and out per second,
  // averaged since the call, enforced once `grace` has passed). An
  // operation cut short by a cap returns timed_out() like any other, and
  // expiry() then says which cap it was.
  void set_lifetime(Deadline end) noexcept;
  void set_minimum_rate(double bytes_per_second, Duration grace) noexcept;
  enum class Expiry : std::uint8_t { none, lifetime, rate };
  Expiry expiry() const noexcept { return caps_ ? caps_->expired : Expiry::none; }

  struct ReadAwaiter;
  struct ReadSomeAwaiter;
  struct WriteAllAwaiter;

  // Reads what has arrived, at most `max_bytes` (and at most the loop's
  // buffer size). An empty InputBuffer means end of file.
  ReadAwaiter read(std::size_t max_bytes, Deadline deadline = Deadline::never()) noexcept;
  // Reads into the caller's buffer; 0 means end of file.
  ReadSomeAwaiter read_some(std::span<std::byte> into,
                            Deadline deadline = Deadline::never()) noexcept;
  // Sends all of `bytes`, or fails.
  WriteAllAwaiter write_all(std::span<const std::byte> bytes,
                            Deadline deadline = Deadline::never()) noexcept;
  WriteAllAwaiter write_all(std::string_view text, Deadline deadline = Deadline::never()) noexcept;

  // Hands bytes back: the next reads return them before anything new. For
  // a protocol layer that read past its part (the bytes after a PROXY
  // header belong to the service). The bytes are copied.
  void unread(std::span<const std::byte> bytes);
  bool has_unread() const noexcept { return unread_ != nullptr; }

  // Sends FIN; reads can go on.
  std::error_code shutdown_write() noexcept;
  // Stops reading: a read in flight, and every later one, returns end of
  // file. This is how one task of a connection ends another's read.
  std::error_code shutdown_read() noexcept;

  // Closes without destroying what was sent. Closing a socket that has
  // unread input makes the kernel send an RST, which can destroy a reply
  // the peer has not read yet. So if input is waiting, this lingers: shuts
  // down writes, reads and discards until the peer closes (bounded by
  // `linger`), then closes. With nothing unread it closes at once.
  // Returns the error that cut the lingering short, if any.
  Task<std::error_code> close_gracefully(LingerOptions linger = {});
  // Closes at once.
  void close() noexcept;

 private:
  struct Caps {
    TimePoint end = TimePoint::max();
    TimePoint rate_start{};
    Duration grace{};
    double minimum_rate = 0;
    Expiry nearest = Expiry::none;  // the cap behind the last deadline given out
    Expiry expired = Expiry::none;
  };

  // Takes up to `max_bytes` of the handed-back bytes.
  InputBuffer take_unread(std::size_t max_bytes);
  // `requested`, or an earlier cap.
  Deadline capped(Deadline requested) noexcept;
  void note_result(int result) noexcept {
    if (caps_ && result == -ETIMEDOUT) caps_->expired = caps_->nearest;
  }

  struct WriteOperation : detail::Operation {
    WriteAllAwaiter* awaiter = nullptr;
  };

  Loop* loop_;
  FileDescriptor socket_;
  detail::Operation reader_;
  WriteOperation writer_;
  detail::ConnectionObserver* observer_;
  mutable std::optional<SocketAddress> peer_;
  std::uint64_t bytes_in_ = 0;
  std::uint64_t bytes_out_ = 0;
  std::unique_ptr<std::vector<std::byte>> unread_;  // rare: a pointer, not a vector
  std::unique_ptr<Caps> caps_;                      // likewise
};

struct Connection::ReadAwaiter {
  Connection* connection;
  Deadline deadline;
  std::uint32_t max_bytes;
  bool from_unread = false;

  bool await_ready() noexcept { return from_unread = connection->has_unread(); }
  bool await_suspend(std::coroutine_handle<> handle) noexcept;
  Result<InputBuffer> await_resume() noexcept;
};

struct Connection::ReadSomeAwaiter {
  Connection* connection;
  Deadline deadline;
  std::span<std::byte> into;
  bool from_unread = false;

  bool await_ready() noexcept { return from_unread = connection->has_unread(); }
  bool await_suspend(std::coroutine_handle<> handle) noexcept;
  Result<std::size_t> await_resume() noexcept;
};

struct Connection::WriteAllAwaiter {
  Connection* connection;
  Deadline deadline;
  const std::byte* next;
  std::size_t left;
  std::error_code error;
  std::coroutine_handle<> waiter;

  bool await_ready() const noexcept { return left == 0; }
  bool await_suspend(std::coroutine_handle<> handle) noexcept;
  std::error_code await_resume() const noexcept { return error; }

 private:
  bool send_until_pending() noexcept;
  bool consume() noexcept;
  static void on_sent(detail::Operation& op) noexcept;
};

// Opens a client connection. The socket is created with the flags the
// loop's backend wants; `source`, if given, is bound first.
struct ConnectAwaiter : detail::Operation {
  Loop* loop;
  SocketAddress target;
  std::optional<SocketAddress> source;
  Deadline deadline;
  FileDescriptor socket;
  int setup_error = 0;

  bool await_ready() noexcept;
  bool await_suspend(std::coroutine_handle<> handle) noexcept;
  Result<Connection> await_resume() noexcept;
};
ConnectAwaiter connect(Loop& loop, const SocketAddress& target,
                       Deadline deadline = Deadline::never(),
                       std::optional<SocketAddress> source = std::nullopt) noexcept;

}  // namespace salam
