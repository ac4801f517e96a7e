// Upgrade: a new salam in this one's place, with no connection lost.
//
// On SIGUSR2 the running salam starts its binary again (the same path, the
// same arguments) and hands it every listening socket — each socket of
// each SO_REUSEPORT group, so that no queued connection is dropped — by
// the protocol of systemd's socket activation: LISTEN_FDS and LISTEN_PID,
// taken by the new process the way it takes sockets from systemd
// (socket_activation.hpp). The new process says it is ready on a pipe
// (SALAM_UPGRADE_READY_FD) once it serves; the old one then stops
// accepting, drains and exits 0. If the new one exits, or is not ready in
// time, it is ended and the old one serves on.
//
// Threading: the main thread's (the signal loop's).
#pragma once

#include <string>
#include <vector>

#include <sys/types.h>

#include <salam/time.hpp>

namespace salam::daemon {

class Upgrade {
 public:
  // Remembers how this process was started, before anything can replace
  // its binary; call first thing in main().
  static void remember_invocation(int argc, char** argv);

  // Starts the new process with `sockets` as its LISTEN_FDS and waits for
  // it to be ready, for at most `timeout`. Returns its pid; 0 if it failed
  // (said in an error line; the new process, if any, is gone).
  static pid_t start(const std::vector<int>& sockets, Duration timeout);

  // In a process started by start(): tells the old one that this one
  // serves. Does nothing in a process started otherwise.
  static void report_ready() noexcept;
  // Whether an upgrade started this process (it then owns the Unix socket
  // files of the listeners it was handed).
  static bool replacing() noexcept;

  // What the new process is started with: this one's binary, arguments
  // and environment (less what names this process's sockets and pid).
  // The spawner takes a copy at its start: confined processes cannot start
  // an unconfined successor, the spawner can (docs/security.md).
  struct Successor {
    std::string path;
    std::vector<std::string> arguments;
    std::vector<std::string> environment;
  };
  static Successor successor();
  // The variables that give the new process its sockets and its ready
  // pipe, with a LISTEN_PID holding 20 NUL bytes where the child writes
  // its pid; `count` sockets at 3, 4, ..., the pipe after them.
  static std::vector<std::string> handover_variables(int count);
  static constexpr int kFirstSocket = 3;  // SD_LISTEN_FDS_START
};

}  // namespace salam::daemon
