// Reading another process's CPU time and memory from /proc, to charge the
// server for the work a run caused.
#pragma once

#include <optional>

#include "stats.hpp"

namespace salam::bench {

// utime + stime (fields 14 and 15 of /proc/PID/stat) and VmRSS of
// /proc/PID/status, and each thread's CPU time from /proc/PID/task;
// nothing if the process is gone or unreadable.
std::optional<ServerSample> sample_server(int pid);

// CPU seconds per thread between two samples, for the threads whose time
// moved, in thread-id order: how evenly a sharded server shared the work.
std::vector<ThreadCpu> thread_cpu_between(const ServerSample& before, const ServerSample& after);

}  // namespace salam::bench
