// Engine: the engine's access to Loop and Connection internals.
//
// Awaiters, backends, acceptors and shards start and complete operations,
// lend receive buffers and create connections that report their end. None
// of that is for handlers, so it is private in the public headers and
// reached through this struct, which only libsalam's own code includes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include <salam/connection.hpp>
#include <salam/detail/operation.hpp>
#include <salam/loop.hpp>
#include <salam/socket.hpp>
#include <salam/time.hpp>

namespace salam::detail {

// Told when a connection's socket closes (after any lingering); the server
// uses it to count connections and to resume accepting after running out
// of descriptors.
class ConnectionObserver {
 public:
  virtual void connection_closed() noexcept = 0;

 protected:
  ~ConnectionObserver() = default;
};

struct Engine {
  // See Loop's private section for what each does.
  static bool start(Loop& loop, Operation& op, Deadline deadline = Deadline::never()) noexcept {
    return loop.start(op, deadline);
  }
  static void cancel(Loop& loop, Operation& op) noexcept { loop.cancel(op); }
  static void complete(Loop& loop, Operation& op) noexcept { loop.complete(op); }
  static void complete_later(Loop& loop, Operation& op) noexcept { loop.complete_later(op); }
  static void cancel_all(Loop& loop) noexcept { loop.cancel_all(); }
  static bool cancelling(const Loop& loop) noexcept { return loop.cancelling(); }
  static void linger(Loop& loop, FileDescriptor socket, ConnectionObserver* observer,
                     std::vector<std::byte> farewell = {}, bool drain = true) noexcept {
    loop.linger(std::move(socket), observer, std::move(farewell), drain);
  }

  // The receive-buffer pool behind OpCode::recv_pooled.
  static std::byte* buffer_data(Loop& loop, std::uint16_t id) noexcept;
  static std::uint32_t buffer_size(const Loop& loop) noexcept;
  static void recycle_buffer(Loop& loop, std::uint16_t id) noexcept;
  // True when the pool is at its cap and nearly every buffer is lent out:
  // bytes kept across a wait are then moved out of the pool.
  static bool buffers_scarce(const Loop& loop) noexcept;

  // Socket flags the backend wants on new sockets (SOCK_NONBLOCK or 0).
  static int socket_flags(const Loop& loop) noexcept;
  // Submits what was started, before a descriptor that it names closes.
  static void submit_started(Loop& loop) noexcept;
  // Closes a descriptor no operation names any more (see Backend::close_fd).
  static void close_fd(Loop& loop, FileDescriptor fd) noexcept;
  // Tells the backend a descriptor is about to be closed.
  static void forget_fd(Loop& loop, int fd) noexcept;
  // Tells the backend this loop is done with a descriptor that stays open.
  static void unwatch_fd(Loop& loop, int fd) noexcept;

  // A connection that tells `observer` when its socket closes.
  static Connection connection(Loop& loop, FileDescriptor socket,
                               const std::optional<SocketAddress>& peer,
                               ConnectionObserver* observer) noexcept {
    Connection connection(loop, std::move(socket), observer);
    if (peer) connection.peer_ = peer->without_v4_mapping();
    return connection;
  }
  // A connection whose close() never lingers: the one a lingering close
  // reads from.
  static Connection lingering_connection(Loop& loop, FileDescriptor socket,
                                         ConnectionObserver* observer) noexcept {
    Connection connection(loop, std::move(socket), observer);
    connection.input_ = Connection::Input::ended;
    return connection;
  }
  static void close_now(Connection& connection) noexcept { connection.close_now(); }

  // A layer (see salam/detail/layer.hpp): installed once, it takes the
  // bytes handed back before it as its own input, and moves bytes through
  // these raw operations, which bypass it.
  static std::vector<std::byte> install_layer(Connection& connection,
                                              std::unique_ptr<Layer> layer) {
    std::vector<std::byte> input;
    if (connection.unread_) input = std::move(*std::exchange(connection.unread_, nullptr));
    connection.layer_ = std::move(layer);
    return input;
  }
  static Layer* layer(Connection& connection) noexcept { return connection.layer_.get(); }
  static Connection::ReadAwaiter raw_read(Connection& connection, std::size_t max_bytes,
                                          Deadline deadline) noexcept {
    return {connection, deadline, static_cast<std::uint32_t>(max_bytes), true};
  }
  static Connection::WriteAllAwaiter raw_write_all(Connection& connection,
                                                   std::span<const std::byte> bytes,
                                                   Deadline deadline) noexcept {
    return {connection, deadline, bytes, true};
  }
};

}  // namespace salam::detail
