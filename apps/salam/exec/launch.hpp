// Starting one program, in the spawner process.
#pragma once

#include <vector>

#include <linux/filter.h>
#include <sys/types.h>

#include "protocol.hpp"
#include "upgrade.hpp"

namespace salam::daemon::exec {

// Runs `request` with `stdio` as descriptors 0 and 1 and `errors` as 2,
// every other descriptor closed, in a session (and process group) of its
// own, with an empty signal mask (and the spawner's dispositions, all
// defaults). Returns
// the child's pid once it has executed the program, or -errno if it could
// not (nothing is then left to reap).
//
// The child is made with clone(CLONE_VM | CLONE_VFORK): the caller is
// suspended until the exec, and no page of its memory is copied.
// With `filter` (exec-sandbox), the child has no new privileges and that
// seccomp filter.
pid_t launch(const Request& request, int stdio, int errors, const sock_fprog* filter) noexcept;

// Starts salam's successor for an upgrade: `successor` with the handover
// variables, `sockets` at descriptors 3, 4, ... and `ready` after them,
// every other descriptor closed, in salam's own process group. Returns its
// pid, or -errno if it could not be executed.
pid_t launch_successor(const Upgrade::Successor& successor, const std::vector<int>& sockets,
                       int ready) noexcept;

}  // namespace salam::daemon::exec
