// Acceptor: one listener, accepting on one shard.
//
// It keeps an accept armed and hands every new socket to its shard. How
// depends on who else accepts from the socket, because that decides how
// the kernel spreads connections over the shards:
//  - a socket of this shard's own (an SO_REUSEPORT group's): one multishot
//    accept, a completion per connection;
//  - a socket all shards share, on epoll: the multishot emulation, woken
//    through EPOLLEXCLUSIVE, which wakes one waiting shard per connection;
//  - a shared socket on io_uring: one-shot accepts, re-armed after each
//    connection. The kernel wakes the first waiter of the socket's queue,
//    and a multishot accept stays first for ever: one shard took every
//    connection. A re-armed accept goes to the back, so the shards take
//    turns, and a busy shard that re-arms late takes fewer. A one-shot
//    accept also reports the peer's address, which saves a getpeername.
//
// Errors that concern one pending connection (ECONNABORTED, EPERM from a
// firewall, network errors) are skipped quietly. Running out
// of descriptors (EMFILE, ENFILE) or memory sheds one pending connection
// through the shard's reserve descriptor and pauses accepting with a
// doubling backoff, so that the loop never spins; a connection closing on
// the shard resumes accepting early.
//
// Stopping loses no connection the kernel has already queued: closing a
// listening socket resets every connection waiting in its queue, so the
// acceptor takes what is queued (up to kTakenAtStop) and serves it, at
// stop and again once its last accept is reaped, then lets go of the
// socket. What is still reset: a connection that arrives after the last
// take (a balancer retries it), and the rest of the queue when descriptors
// or memory run out. When the shard would not serve them (the loop is
// ending or cutting its connections, or a stop(0) left no time to drain)
// the queue is left alone, since after an upgrade another process serves
// the same socket, and what the cancelled accept brings is closed.
//
// Threading: the shard's thread only. Lifetime: owned by the shard, which
// destroys it only after its loop has reaped every operation.
#pragma once

#include <memory>
#include <optional>

#include <sys/socket.h>

#include <salam/detail/operation.hpp>
#include <salam/server.hpp>
#include <salam/socket.hpp>

namespace salam::detail {

class Shard;

class Acceptor {
 public:
  Acceptor(Shard& shard, std::shared_ptr<FileDescriptor> listener, bool shared, Handler handler);
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  void start() noexcept;
  // Stops accepting and, once the armed accept is reaped, serves what is
  // queued and lets go of the listening socket.
  void stop() noexcept;
  // Ends an accept pause now (a descriptor was freed).
  void resume() noexcept;
  bool paused() const noexcept { return paused_; }
  // Stopped, with its queue taken a last time and its socket let go.
  bool released() const noexcept { return stopped_ && !listener_; }
  // New connections go to `handler`; those already running keep theirs.
  void set_handler(Handler handler) noexcept { handler_ = std::move(handler); }
  // Stopped, with no operation left in the loop: safe to destroy.
  bool finished() const noexcept { return stopped_ && !accept_.in_flight && !backoff_.in_flight; }

 private:
  struct Step : Operation {
    Acceptor* acceptor = nullptr;
  };

  // At most this many queued connections are taken at stop: a queue
  // holds at most net.core.somaxconn (4096 by default) and each take is
  // one non-blocking accept(2), so a client that connects faster than
  // that cannot hold the stop.
  static constexpr int kTakenAtStop = 4096;

  void arm() noexcept;
  void on_result(int result, bool more) noexcept;
  void hand_over(int socket, std::optional<SocketAddress> peer) noexcept;
  void take_queued() noexcept;
  void release() noexcept;
  void pause(int error) noexcept;
  static void on_accept(Operation& op) noexcept;
  static void on_backoff_end(Operation& op) noexcept;

  Shard& shard_;
  std::shared_ptr<FileDescriptor> listener_;
  Handler handler_;
  Step accept_;
  Step backoff_;
  Duration next_backoff_;
  bool multishot_;
  sockaddr_storage peer_{};  // one-shot accepts: the new connection's peer
  TimePoint last_warning_{};
  bool stopped_ = false;
  bool paused_ = false;              // waiting out a backoff
  bool short_of_resources_ = false;  // since the last successful accept
};

}  // namespace salam::detail
