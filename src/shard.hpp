// Shard: one thread's share of a Server — a loop, an acceptor per
// listener, and the connections it accepted.
//
// Threading: run() is the shard thread's body; the request_* functions may
// be called from any thread (they post to the loop); everything else runs
// on the shard's thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include <salam/connection.hpp>
#include <salam/event.hpp>
#include <salam/loop.hpp>
#include <salam/scope.hpp>
#include <salam/server.hpp>
#include <salam/socket.hpp>

#include "engine.hpp"

namespace salam::detail {

class Acceptor;

// One listener as a shard gets it: the sockets it accepts from (one,
// usually; more when it was handed a larger SO_REUSEPORT group than it has
// shards), each with whether other shards accept from it too.
struct ShardListener {
  struct Socket {
    std::shared_ptr<FileDescriptor> socket;
    bool shared = true;
  };
  std::size_t id;
  std::vector<Socket> sockets;
  HandlerFactory factory;  // called once, on the shard's thread
};

class Shard final : public ConnectionObserver {
 public:
  Shard(unsigned index, unsigned count, const ServerOptions& options,
        std::vector<ShardListener> listeners, std::vector<ShardTask> tasks);
  ~Shard();

  // The thread body: sets up the loop, reports through `started`, runs
  // until stopped and drained.
  void run(std::promise<void>& started) noexcept;
  // Thread-safe: stop accepting; cancel connections still open at
  // `drain_deadline`. A later call may bring the deadline closer.
  void request_stop(TimePoint drain_deadline);
  // Thread-safe: start or stop accepting on a listener, or give its new
  // connections another handler.
  void request_add(ShardListener listener);
  void request_remove(std::size_t id);
  void request_replace(std::size_t id, HandlerFactory factory);

  unsigned index() const noexcept { return index_; }
  unsigned count() const noexcept { return count_; }
  Loop& loop() noexcept { return *loop_; }
  Event& stop_requested() noexcept { return *stop_requested_; }
  std::uint64_t accepted() const noexcept { return accepted_.load(std::memory_order_relaxed); }
  std::size_t open_connections() const noexcept {
    return open_connections_.load(std::memory_order_relaxed);
  }
  std::size_t cancelled_at_drain() const noexcept {
    return cancelled_at_drain_.load(std::memory_order_relaxed);
  }
  Duration accept_backoff() const noexcept { return options_.accept_backoff; }
  Duration accept_backoff_max() const noexcept { return options_.accept_backoff_max; }

  // For acceptors: serve a new connection; shed one when out of descriptors.
  void serve(FileDescriptor socket, std::optional<SocketAddress> peer,
             const Handler& handler) noexcept;
  void shed_one(int listener) noexcept;
  // For acceptors: whether a connection accepted now would be served. Not
  // once the loop is ending or cutting its connections, nor in a stop that
  // left no time to drain (stop(0)).
  bool would_serve() const noexcept;
  // For acceptors: one has let go of its socket (the stop waits for all).
  void acceptor_released() noexcept;
  // For acceptors: an accept that failed with `error` (an errno).
  void count_accept_error(int error) noexcept;
  AcceptErrors accept_errors() const noexcept;

  void connection_closed() noexcept override;

 private:
  Task<> main(std::promise<void>& started);
  bool acceptors_released() const noexcept;
  void keep_reserve() noexcept;
  void start_tasks() noexcept;
  void post(std::function<void()> work);
  void add(ShardListener listener) noexcept;
  // The acceptors of one listener (throws what its factory throws).
  void make_acceptors(ShardListener& listener);
  void remove(std::size_t id) noexcept;
  void begin_stop(TimePoint drain_deadline) noexcept;

  const unsigned index_;
  const unsigned count_;
  const ServerOptions& options_;
  std::vector<ShardListener> initial_listeners_;
  std::vector<ShardTask> tasks_;
  // Acceptors outlive the loop: its destructor reaps their operations.
  // One or more per listener id.
  std::multimap<std::size_t, std::unique_ptr<Acceptor>> acceptors_;
  std::vector<std::unique_ptr<Acceptor>> retired_;  // stopped, maybe not reaped yet
  std::optional<Loop> loop_;
  std::optional<TaskScope> connections_;
  std::optional<Event> stop_requested_;
  std::optional<Event> drain_progress_;
  TimePoint drain_deadline_ = TimePoint::max();
  TimePoint drain_started_{};  // when the first stop request came
  bool stopping_ = false;
  // A descriptor kept in reserve, closed to accept-and-drop one connection
  // when the process is out of descriptors. Another thread may take the
  // number it frees, so it is reopened whenever it is missing and a
  // descriptor may be free again (see keep_reserve).
  FileDescriptor reserve_;
  // Guards posting to the loop against its destruction at the end of run().
  std::mutex loop_mutex_;
  bool loop_alive_ = false;
  std::atomic<std::size_t> open_connections_ = 0;
  std::atomic<std::size_t> cancelled_at_drain_ = 0;
  std::atomic<std::uint64_t> accepted_ = 0;
  struct {
    std::atomic<std::uint64_t> descriptors = 0;
    std::atomic<std::uint64_t> memory = 0;
    std::atomic<std::uint64_t> other = 0;
  } accept_errors_;
};

}  // namespace salam::detail
