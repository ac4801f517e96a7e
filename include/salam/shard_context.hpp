// ShardContext: what a shard task knows of the shard it runs on.
//
// Server::on_each_shard runs a task on every shard: a periodic job, a
// per-shard cache's upkeep, a metrics flush. The task gets a ShardContext:
// the shard's index (0 .. count()-1), its loop, and a wait that the
// server's stop cuts short:
//
//   salam::Task<> tick(salam::ShardContext shard) {
//     for (;;) {
//       const bool stopping = co_await shard.wait_for_stop(1s);
//       if (stopping) break;
//       ...  // once a second, on every shard
//     }
//   }
//
// Threading: a small handle; use it on the shard's thread (the task's
// own). Lifetime: valid while the task runs; the server joins every shard
// task before it stops, like a connection.
#pragma once

#include <optional>

#include <salam/event.hpp>
#include <salam/loop.hpp>
#include <salam/time.hpp>

namespace salam {

namespace detail {
class Shard;
}

class ShardContext {
 public:
  // This shard's index, from 0, and how many shards the server runs.
  unsigned index() const noexcept;
  unsigned count() const noexcept;
  Loop& loop() const noexcept;
  // True once the server has begun to stop.
  bool stopping() const noexcept;
  // Completes at `deadline` with false, or when the server begins to stop
  // with true (at once if it has).
  Event::Awaiter wait_for_stop(Deadline deadline = Deadline::never()) const noexcept;

  // The shard whose thread calls, if any: in a handler, a handler factory
  // or a shard task, the shard it runs on (to index per-shard state).
  static std::optional<ShardContext> current() noexcept;

 private:
  friend class detail::Shard;
  explicit ShardContext(detail::Shard& shard) noexcept : shard_(&shard) {}

  detail::Shard* shard_;
};

}  // namespace salam
