// Plain POSIX clients for the engine's integration tests: blocking sockets
// with timeouts, and a poll(2) driver for many concurrent exchanges. They
// deliberately share no code with libsalam, so a bug in the library cannot
// hide itself on both ends.
#pragma once

#include <string>
#include <string_view>

#include <salam/address.hpp>
#include <salam/socket.hpp>
#include <salam/time.hpp>

namespace salam::testing {

// Raises the soft descriptor limit to the hard one (tests open thousands).
void raise_descriptor_limit();

// A connected blocking socket whose reads and writes time out after
// `timeout`. Returns an invalid descriptor on failure.
FileDescriptor connect_blocking(const SocketAddress& target,
                                Duration timeout = std::chrono::seconds(5));

// Reads until end of file, an error or the socket's timeout. `error` gets
// errno (0 at a clean end of file).
std::string read_until_eof(int fd, int* error = nullptr);
bool send_all(int fd, std::string_view bytes);

// One exchange of the greeting protocol: connect, send `message`, read
// to end of file. Returns what was read; `error` as above.
std::string greet_once(const SocketAddress& target, std::string_view message, int* error = nullptr);

struct ExchangeStats {
  int ok = 0;
  int wrong_reply = 0;
  int failed = 0;  // refused, reset, timed out
  std::string first_problem;
};

// Runs `count` greeting exchanges, `concurrency` at a time, all from this
// thread with poll(2). Each must return exactly `expected`. Gives up on
// exchanges still open after `timeout` (counted as failed).
ExchangeStats run_exchanges(const SocketAddress& target, int count, int concurrency,
                            std::string_view message, std::string_view expected, Duration timeout);

// CPU time (user + system) the process has used, from /proc/PID/stat.
Duration process_cpu_time(int pid);

}  // namespace salam::testing
