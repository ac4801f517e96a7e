// The spawner process, which runs the exec service's programs (see
// protocol.hpp for why it exists and what it is told).
//
// It is a child of the daemon, forked by start_spawner() from main() while
// the daemon has one thread. It reaps its children from its own event loop
// (a signalfd for SIGCHLD, waitpid with WNOHANG), is their subreaper, so
// that grandchildren a program leaves behind are reaped too, and ends once
// the daemon is gone (its channel reads end of file), killing the process
// groups still running.
#pragma once

#include <sys/types.h>

namespace salam::daemon::exec {

// Forks the spawner. Returns 0, or an errno value if it could not be
// started (then the exec service cannot run programs).
int start_spawner() noexcept;

// True once start_spawner() succeeded.
bool spawner_started() noexcept;

// Hands one program run to the spawner (see protocol.hpp): the far ends of
// control, stdio and stderr, which the caller closes afterwards. Any
// thread may call; it never blocks. Returns 0 or an errno value (EAGAIN:
// the spawner is behind; EPIPE: it is gone).
int hand_over(int control, int stdio, int errors) noexcept;

}  // namespace salam::daemon::exec
