// Starting one program, in the spawner process.
#pragma once

#include <linux/filter.h>
#include <sys/types.h>

#include "protocol.hpp"

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

}  // namespace salam::daemon::exec
