#include "sandbox/seccomp_filter.hpp"

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>

#include <fmt/format.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/socket.h>

namespace salam::daemon {

namespace {

using Filter = std::unique_ptr<void, decltype(&::seccomp_release)>;

void check(int result, std::string_view what) {
  if (result < 0) {
    throw std::runtime_error(
        fmt::format("cannot install the system call filter: {}: {}", what, std::strerror(-result)));
  }
}

int number(const char* name) {
  return ::seccomp_syscall_resolve_name(name);
}

// A condition on the first argument, every field named (libseccomp's
// SCMP_A0 leaves some to the compiler's warnings).
scmp_arg_cmp first_argument(scmp_compare op, scmp_datum_t a, scmp_datum_t b = 0) {
  return scmp_arg_cmp{0, op, a, b};
}

// The calls allowed only with some arguments, or refused with an error
// rather than killing: each is a choice, so each is here, said why.
void add_conditional_rules(scmp_filter_ctx filter) {
  // New rings would not have the restrictions salam's have (the
  // operations a ring carries are no system calls, so the filter does not
  // see them). EPERM rather than death: the new process of an upgrade,
  // which inherits this filter, then falls back to epoll.
  check(::seccomp_rule_add(filter, SCMP_ACT_ERRNO(EPERM), number("io_uring_setup"), 0),
        "io_uring_setup");
  // Threads, and the upgrade's fork, but no new namespace: clone3 passes
  // its flags in memory, which a filter cannot read, so it answers ENOSYS
  // and glibc falls back to clone.
  check(::seccomp_rule_add(filter, SCMP_ACT_ERRNO(ENOSYS), number("clone3"), 0), "clone3");
  constexpr scmp_datum_t kNamespaces = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
                                       CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP;
  check(::seccomp_rule_add(filter, SCMP_ACT_ALLOW, number("clone"), 1,
                           first_argument(SCMP_CMP_MASKED_EQ, kNamespaces, 0)),
        "clone");
  // The families salam speaks: not netlink, packet or the others.
  for (const int family : {AF_UNIX, AF_INET, AF_INET6}) {
    check(::seccomp_rule_add(filter, SCMP_ACT_ALLOW, number("socket"), 1,
                             first_argument(SCMP_CMP_EQ, static_cast<scmp_datum_t>(family))),
          "socket");
  }
}

}  // namespace

void install_system_call_filter() {
  // Anything else, and any call made through another architecture's
  // numbers (none is added), kills the whole process.
  Filter filter(::seccomp_init(SCMP_ACT_KILL_PROCESS), &::seccomp_release);
  if (!filter) throw std::runtime_error("cannot install the system call filter: seccomp_init");
  check(::seccomp_attr_set(filter.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS),
        "the action for other architectures");
  // Every thread, the shards' included.
  check(::seccomp_attr_set(filter.get(), SCMP_FLTATR_CTL_TSYNC, 1), "TSYNC");
  for (const char* name : allowed_system_calls()) {
    const int call = number(name);
    if (call == __NR_SCMP_ERROR) continue;  // not a call of this architecture
    check(::seccomp_rule_add(filter.get(), SCMP_ACT_ALLOW, call, 0), name);
  }
  add_conditional_rules(filter.get());
  check(::seccomp_load(filter.get()), "seccomp_load");
}

}  // namespace salam::daemon
