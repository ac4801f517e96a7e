// The client side of each workload: one coroutine per simulated client
// ("worker"), many workers per client thread, one Loop per thread.
//
// A worker is a single coroutine that loops over its operations; it does
// not call a sub-coroutine per operation, because each call would allocate
// a frame. Buffers (the reply buffer, the payload) are allocated once per
// worker or per thread and reused, so the steady state allocates nothing
// (over TLS each handshake allocates: OpenSSL's objects, tls::connect's
// frames).
//
// Threading: a ThreadContext and its workers live on one client thread;
// only `progress` is read by the main thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <system_error>
#include <vector>

#include <salam/address.hpp>
#include <salam/loop.hpp>
#include <salam/task.hpp>
#include <salam/time.hpp>
#include <salam/tls.hpp>

#include "options.hpp"
#include "stats.hpp"

namespace salam::bench {

// Counters the main thread reads for the progress line. Each is written by
// its own client thread only (a relaxed store, no read-modify-write), and
// each thread's block sits on its own cache line.
struct alignas(64) Progress {
  std::atomic<std::uint64_t> operations{0};
  std::atomic<std::uint64_t> errors{0};
  std::atomic<std::uint64_t> held{0};
};

// When things happen, the same for every thread.
struct Schedule {
  TimePoint measure_start;  // operations started before this are warm-up
  TimePoint end;            // no operation starts after this (TimePoint::max() with --requests)
  TimePoint burst_at;       // when every burst client connects
  // Set by Ctrl-C: no new operation starts, and the run reports what it
  // measured so far. Read with a relaxed load per operation.
  const std::atomic<bool>* interrupted = nullptr;
};

class ThreadContext {
 public:
  enum class Phase : std::uint8_t { stop, warmup, measure };

  // `tls`: the thread's TLS context, with --tls.
  ThreadContext(Loop& loop, const Options& options, const Schedule& schedule, Progress& progress,
                std::uint64_t requests, std::shared_ptr<const tls::ClientContext> tls = nullptr);

  Loop& loop() const noexcept { return *loop_; }
  const Options& options() const noexcept { return *options_; }
  const Schedule& schedule() const noexcept { return schedule_; }
  const std::vector<std::byte>& payload() const noexcept { return payload_; }
  std::optional<SocketAddress> source_for(unsigned worker) const noexcept;
  const std::shared_ptr<const tls::ClientContext>& tls() const noexcept { return tls_; }

  // Whether an operation may start at `now`, and whether it counts.
  Phase next(TimePoint now) noexcept;

  void succeeded(Phase phase, TimePoint started, TimePoint ended = Clock::now()) noexcept;
  // `tls_detail`: the library's reason, for a TLS failure.
  void failed(Phase phase, std::error_code error, std::string_view tls_detail = {}) noexcept;
  void failed(Phase phase, ErrorKind kind) noexcept;
  // A reset that ended a connection after its whole reply had arrived.
  void reset_after_reply(Phase phase) noexcept;
  void count_bytes(Phase phase, std::uint64_t sent, std::uint64_t received) noexcept;
  // A TLS handshake succeeded; `offered`: it offered a saved session.
  void handshake_done(Phase phase, const tls::SessionInfo& info, bool offered) noexcept;
  // A hold connection is established / has ended.
  void hold_started() noexcept;
  void hold_ended() noexcept;

  Stats& stats() noexcept { return stats_; }
  // When the last measured operation ended (the measurement's end).
  TimePoint last_completion() const noexcept { return last_completion_; }

 private:
  void publish(TimePoint now = Clock::now()) noexcept;

  Loop* loop_;
  const Options* options_;
  Schedule schedule_;
  Progress* progress_;
  // With --requests: how many operations this thread may still start.
  std::uint64_t remaining_;
  bool counted_ = false;
  std::vector<std::byte> payload_;
  std::vector<SocketAddress> sources_;
  std::shared_ptr<const tls::ClientContext> tls_;
  std::uint64_t held_ = 0;
  TimePoint last_completion_{};
  Stats stats_;
};

// The coroutine of one worker for the context's workload.
Task<> run_worker(ThreadContext* context, unsigned index);

}  // namespace salam::bench
