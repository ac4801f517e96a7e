// Shard: one thread's share of a Server — a loop, an acceptor per
// listener, and the connections it accepted.
//
// Threading: run() is the shard thread's body; request_stop() may be called
// from any thread; everything else runs on the shard's thread.
#pragma once

#include <atomic>
#include <future>
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

namespace salam::detail {

class Acceptor;

// What a shard needs to know of one listener.
struct ShardListener {
  std::shared_ptr<FileDescriptor> socket;
  const Handler* handler;
};

class Shard final : public ConnectionObserver {
 public:
  Shard(unsigned index, const ServerOptions& options, std::vector<ShardListener> listeners);
  ~Shard();

  // The thread body: sets up the loop, reports through `started`, runs
  // until stopped and drained.
  void run(std::promise<void>& started) noexcept;
  // Thread-safe: stop accepting; cancel connections still open at
  // `drain_deadline`. A later call may bring the deadline closer.
  void request_stop(TimePoint drain_deadline);

  unsigned index() const noexcept { return index_; }
  Loop& loop() noexcept { return *loop_; }
  std::size_t open_connections() const noexcept {
    return open_connections_.load(std::memory_order_relaxed);
  }
  std::size_t cancelled_at_drain() const noexcept {
    return cancelled_at_drain_.load(std::memory_order_relaxed);
  }
  Duration accept_backoff() const noexcept { return options_.accept_backoff; }
  Duration accept_backoff_max() const noexcept { return options_.accept_backoff_max; }

  // For acceptors: serve a new connection; shed one when out of descriptors.
  void serve(FileDescriptor socket, const Handler& handler) noexcept;
  void shed_one(int listener) noexcept;

  void connection_closed() noexcept override;

 private:
  Task<> main();
  void begin_stop(TimePoint drain_deadline) noexcept;

  const unsigned index_;
  const ServerOptions& options_;
  std::vector<ShardListener> listeners_;
  // Acceptors outlive the loop: its destructor reaps their operations.
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  std::optional<Loop> loop_;
  std::optional<TaskScope> connections_;
  std::optional<Event> stop_requested_;
  std::optional<Event> drain_progress_;
  TimePoint drain_deadline_ = TimePoint::max();
  // A descriptor kept in reserve, closed to accept-and-drop one connection
  // when the process is out of descriptors.
  FileDescriptor reserve_;
  // Guards posting to the loop against its destruction at the end of run().
  std::mutex loop_mutex_;
  bool loop_alive_ = false;
  std::atomic<std::size_t> open_connections_ = 0;
  std::atomic<std::size_t> cancelled_at_drain_ = 0;
};

}  // namespace salam::detail
