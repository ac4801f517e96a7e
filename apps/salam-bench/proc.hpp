// Reading another process's CPU time and memory from /proc, to charge the
// server for the work a run caused.
#pragma once

#include <optional>

#include "stats.hpp"

namespace salam::bench {

// utime + stime (fields 14 and 15 of /proc/PID/stat) and VmRSS of
// /proc/PID/status; nothing if the process is gone or unreadable.
std::optional<ServerSample> sample_server(int pid);

}  // namespace salam::bench
