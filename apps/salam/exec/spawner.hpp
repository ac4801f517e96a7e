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

#include <cstddef>
#include <optional>
#include <vector>

#include <sys/types.h>

#include "sandbox/privileges.hpp"

namespace salam::daemon {
struct DaemonConfig;
}

namespace salam::daemon::exec {

// Who the spawner may run programs as. Its requests come from the daemon,
// which a client might compromise, and the spawner is not confined: it
// must not be a way back to root (docs/security.md).
struct SpawnerPolicy {
  // Started as root with --user and no exec-user or exec-group anywhere:
  // the spawner becomes that user too, and so does every program.
  std::optional<Identity> become;
  // Otherwise, as root: a request must name one of these users, and only
  // these groups, unless `allow_own` (a listener at start runs its
  // programs as salam itself: root).
  bool restricted = false;
  bool allow_own = false;
  std::vector<uid_t> uids;
  std::vector<gid_t> gids;
};

// The policy the configuration at start implies. A reload can change
// exec-user only among the users this names.
SpawnerPolicy spawner_policy(const DaemonConfig& config);

// Forks the spawner. Returns 0, or an errno value if it could not be
// started (then the exec service cannot run programs).
int start_spawner(const SpawnerPolicy& policy) noexcept;

// True once start_spawner() succeeded.
bool spawner_started() noexcept;

// Hands one program run to the spawner (see protocol.hpp): the far ends of
// control, stdio and stderr, which the caller closes afterwards. Any
// thread may call; it never blocks. Returns 0 or an errno value (EAGAIN:
// the spawner is behind; EPIPE: it is gone).
int hand_over(int control, int stdio, int errors) noexcept;

// Hands an upgrade's successor to the spawner: the far end of a control
// socket (answered as for a program), the ready pipe's write end, and the
// listening sockets (at most kMaxSuccessorSockets). The successor is started unconfined,
// with the binary, arguments and environment salam started with.
inline constexpr std::size_t kMaxSuccessorSockets = 251;
int hand_over_successor(int control, int ready, const std::vector<int>& sockets) noexcept;

}  // namespace salam::daemon::exec
