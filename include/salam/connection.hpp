// Connection: one TCP connection, owned by the coroutine that serves it.
//
// A handler receives its Connection by value and so owns the socket; the
// socket closes when the Connection is destroyed or close() is called.
// Every operation returns its outcome as a value: a byte count, the bytes
// read, or an error_code — timed_out() when its deadline passed, and
// cancelled() when close() was called or the server is shutting down after
// its drain deadline. A timed-out connection stays usable.
//
// The end of a connection belongs to the engine: close() (or destruction)
// is a request. Operations still in flight complete with cancelled(), the
// peer sees the FIN at once, and if input is left unread the loop lingers
// before the last close so that an RST cannot destroy what was sent (see
// LoopOptions::linger_timeout). A handler never has to close gracefully by
// hand.
//
// A protocol layer such as TLS (tls::accept) sits between the socket and
// these operations once installed: see detail/layer.hpp.
//
// Memory: a connection waiting in read() holds no buffer; the bytes arrive
// in a buffer lent by the loop (see InputBuffer).
//
// Threading: use a connection only on the loop that created it. At most one
// read and one write may be in flight at a time (two tasks may share a
// connection, one reading, one writing); a second read or write started
// while one is in flight fails at once with busy(), on both backends and in
// every build type. The two operations live in the Connection itself (so
// that a coroutine waiting on it carries a few words, not an operation, in
// its frame). Lifetime: a Connection must not be moved or destroyed while
// an operation is in flight; doing so ends the process with a message.
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
#include <salam/detail/layer.hpp>
#include <salam/detail/operation.hpp>
#include <salam/loop.hpp>
#include <salam/result.hpp>
#include <salam/socket.hpp>
#include <salam/task.hpp>
#include <salam/time.hpp>

namespace salam {

class Connection {
 public:
  // Takes a connected stream socket (for example one accepted by hand);
  // `peer` saves asking the kernel for the remote address.
  Connection(Loop& loop, FileDescriptor socket,
             std::optional<SocketAddress> peer = std::nullopt) noexcept;
  Connection(Connection&& other) noexcept;
  Connection& operator=(Connection&&) = delete;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  Loop& loop() const noexcept { return *loop_; }
  // The socket, for options (setsockopt) and the like; never close it by
  // hand: the engine may still name it (use close()).
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

  class ReadAwaiter;
  class ReadSomeAwaiter;
  class WriteAllAwaiter;

  // Reads what has arrived, at most `max_bytes` (at least 1, and at most
  // the loop's buffer size). An empty InputBuffer means end of file.
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

  // Sends FIN; reads can go on. On a connection with a layer (TLS) it
  // fails with operation_not_supported: close() ends such a connection,
  // sending the layer's farewell first.
  std::error_code shutdown_write() noexcept;
  // Stops reading: a read in flight, and every later one, returns end of
  // file. This is how one task of a connection ends another's read.
  std::error_code shutdown_read() noexcept;

  // Closes the connection, now or after lingering (see the top of this
  // file); idempotent. Reads and writes after it fail with not_connected().
  // Outside the loop's run() it closes at once: there is nothing to linger
  // in. Linger::never closes at once in any case: for a connection refused
  // before its exchange, whose unread input deserves no wait (the peer may
  // then see an RST).
  enum class Linger : std::uint8_t { if_input_left, never };
  void close(Linger linger = Linger::if_input_left) noexcept;

 private:
  friend struct detail::Engine;
  Connection(Loop& loop, FileDescriptor socket, detail::ConnectionObserver* observer) noexcept;

  // What the last read said about input still queued in the kernel.
  enum class Input : std::uint8_t { unknown, drained, pending, ended };

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
  // Records a finished read: its result and whether input is left.
  void note_read(const detail::Operation& op, std::size_t requested) noexcept;
  // The error an operation that cannot start gets, or 0: the socket is
  // closed (ENOTCONN) or one of its kind is in flight already (EBUSY): `op`,
  // or on a layered connection a handler's operation through the layer
  // (`layered_busy`), whatever the layer's own operations (`raw`) are doing.
  int refusal(const detail::Operation& op, bool layered_busy, bool raw) const noexcept;
  // Closes the socket now, without lingering.
  void close_now() noexcept;

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
  Input input_ = Input::unknown;
  bool layered_reading_ = false;  // a handler's read through the layer is in flight
  bool layered_writing_ = false;  // likewise a write
  std::unique_ptr<std::vector<std::byte>> unread_;  // rare: a pointer, not a vector
  std::unique_ptr<Caps> caps_;                      // likewise
  std::unique_ptr<detail::Layer> layer_;            // TLS, when installed
};

class [[nodiscard]] Connection::ReadAwaiter {
 public:
  bool await_ready() noexcept;
  bool await_suspend(std::coroutine_handle<> handle) noexcept;
  Result<InputBuffer> await_resume() noexcept;

 private:
  friend class Connection;
  friend struct detail::Engine;
  ReadAwaiter(Connection& connection, Deadline deadline, std::uint32_t max_bytes, bool raw) noexcept
      : connection_(&connection), deadline_(deadline), max_bytes_(max_bytes), raw_(raw) {}

  Connection* connection_;
  Deadline deadline_;
  std::uint32_t max_bytes_;
  bool raw_;  // the socket's bytes, past any layer (the layer's own reads)
  bool from_unread_ = false;
  int refused_ = 0;
  Task<Result<InputBuffer>> layered_;
};

class [[nodiscard]] Connection::ReadSomeAwaiter {
 public:
  bool await_ready() noexcept;
  bool await_suspend(std::coroutine_handle<> handle) noexcept;
  Result<std::size_t> await_resume() noexcept;

 private:
  friend class Connection;
  ReadSomeAwaiter(Connection& connection, Deadline deadline, std::span<std::byte> into) noexcept
      : connection_(&connection), deadline_(deadline), into_(into) {}

  Connection* connection_;
  Deadline deadline_;
  std::span<std::byte> into_;
  bool from_unread_ = false;
  int refused_ = 0;
  Task<Result<std::size_t>> layered_;
};

class [[nodiscard]] Connection::WriteAllAwaiter {
 public:
  bool await_ready() noexcept;
  bool await_suspend(std::coroutine_handle<> handle) noexcept;
  std::error_code await_resume() noexcept;

 private:
  friend class Connection;
  friend struct detail::Engine;
  WriteAllAwaiter(Connection& connection, Deadline deadline, std::span<const std::byte> bytes,
                  bool raw) noexcept
      : connection_(&connection),
        deadline_(deadline),
        next_(bytes.data()),
        left_(bytes.size()),
        raw_(raw) {}

  bool send_until_pending() noexcept;
  bool consume() noexcept;
  static void on_sent(detail::Operation& op) noexcept;

  Connection* connection_;
  Deadline deadline_;
  const std::byte* next_;
  std::size_t left_;
  bool raw_;  // to the socket, past any layer (the layer's own writes)
  std::error_code error_;
  std::coroutine_handle<> waiter_;
  Task<std::error_code> layered_;
};

// A connected pair of local sockets (socketpair(2), AF_UNIX): one end a
// Connection on `loop`, the other a plain descriptor, blocking and
// close-on-exec, for a child process or a thread that uses blocking I/O.
// `type` is SOCK_STREAM or SOCK_SEQPACKET (whose reads return one message
// each, and whose writes send one).
struct LocalPair {
  Connection here;
  FileDescriptor there;
};
Result<LocalPair> local_pair(Loop& loop, int type = SOCK_STREAM) noexcept;

class ConnectAwaiter;
// Opens a client connection. The socket is created with the flags the
// loop's backend wants; `source`, if given, is bound first.
ConnectAwaiter connect(Loop& loop, const SocketAddress& target,
                       Deadline deadline = Deadline::never(),
                       std::optional<SocketAddress> source = std::nullopt) noexcept;

class [[nodiscard]] ConnectAwaiter {
 public:
  bool await_ready() noexcept;
  bool await_suspend(std::coroutine_handle<> handle) noexcept;
  Result<Connection> await_resume() noexcept;

 private:
  friend ConnectAwaiter connect(Loop&, const SocketAddress&, Deadline,
                                std::optional<SocketAddress>) noexcept;
  ConnectAwaiter(Loop& loop, const SocketAddress& target, Deadline deadline,
                 std::optional<SocketAddress> source) noexcept
      : loop_(&loop), target_(target), source_(source), deadline_(deadline) {}

  detail::Operation op_;
  Loop* loop_;
  SocketAddress target_;
  std::optional<SocketAddress> source_;
  Deadline deadline_;
  FileDescriptor socket_;
  int setup_error_ = 0;
};

}  // namespace salam
