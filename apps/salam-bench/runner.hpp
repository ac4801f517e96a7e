// run(): starts the client threads, each with its own Loop and its share
// of the workers, shows progress, samples the server, and merges what the
// threads measured once they have ended.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include <salam/loop.hpp>
#include <salam/time.hpp>

#include "options.hpp"
#include "stats.hpp"

namespace salam::bench {

struct RunResult {
  Stats stats;
  Duration elapsed{};
  BackendKind backend = BackendKind::automatic;
  // Server CPU seconds spent during the measured part (--server-pid).
  std::optional<double> server_cpu_seconds;
  // The same, per server thread whose time moved (a sharded server's
  // balance).
  std::vector<ThreadCpu> server_threads;
  // --upstream-pid: its CPU seconds over the same span.
  std::optional<double> upstream_cpu_seconds;
  // hold with --server-pid: the server's RSS before connecting and once
  // every connection was held (or near the end, if some never were).
  std::optional<std::uint64_t> server_rss_before_kib;
  std::optional<std::uint64_t> server_rss_held_kib;
  std::uint64_t most_held = 0;
};

// Throws std::runtime_error if a client thread cannot start its loop, or
// if the TLS settings cannot be used (tls::Error, an unreadable CA file).
RunResult run(const Options& options);

}  // namespace salam::bench
