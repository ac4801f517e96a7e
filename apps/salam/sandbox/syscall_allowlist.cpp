// The system calls salam may make once it is confined, by name, whatever
// their arguments. Everything else kills the process (seccomp_filter.cpp,
// which also holds the few calls allowed only with some arguments: clone,
// socket; and those refused with an error: clone3, io_uring_setup).
//
// Found by tracing salam (strace -f -c) through every service, TLS, Unix
// listeners, the admin endpoint, reloads that add and remove listeners,
// log reopening, an upgrade, a drain, on both backends. The new process an
// upgrade starts inherits the filter, so what a start needs is here too
// (exec, the dynamic loader, reading the configuration, confining itself).
// A new feature adds its calls to a group here, or a group of its own.
#include <array>

#include "sandbox/seccomp_filter.hpp"

namespace salam::daemon {

namespace {

constexpr auto kAllowed = std::to_array<const char*>({
    // clang-format off
    // Memory: the allocator, thread stacks, the rings' queues.
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise",
    // Threads: waiting, naming, their exit, and what glibc does for each.
    "futex", "set_robust_list", "rseq", "set_tid_address", "gettid", "exit", "exit_group",
    "sched_yield", "sched_getaffinity", "prctl", "arch_prctl",
    // Signals: the signal loop waits for them; the upgrade and the drain
    // send them; a sleep a signal interrupted resumes by restart_syscall.
    "rt_sigaction", "rt_sigprocmask", "rt_sigtimedwait", "rt_sigreturn", "restart_syscall",
    "tgkill", "kill",
    "getpid",
    // Time.
    "clock_gettime", "clock_nanosleep",
    // Descriptors and files: configuration, rules, quotes, certificates,
    // the access and pid files, /proc reads (the file system rules decide
    // which files may be opened).
    "read", "write", "pread64", "close", "openat", "fstat", "newfstatat", "fstatfs", "lseek",
    "fcntl", "fsync", "dup2", "dup3", "pipe2", "unlink", "unlinkat", "rename", "renameat2", "readlink",
    "access", "faccessat2", "getdents64", "ioctl", "getcwd",
    // Sockets: listening, accepting, serving, the admin endpoint, sd_notify.
    "bind", "listen", "accept4", "connect", "shutdown", "setsockopt", "getsockopt", "getsockname",
    "getpeername", "recvfrom", "sendto",
    // The event loops: epoll, io_uring (rings made before the filter), the wake-up descriptor.
    "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "io_uring_enter",
    "io_uring_register", "eventfd2", "poll",
    // The upgrade: a new process running salam again (its start, under this
    // filter: the loader, the limits, confining itself).
    "execve", "wait4", "prlimit64", "getrandom",
    "sysinfo", "seccomp", "landlock_create_ruleset", "landlock_add_rule",
    "landlock_restrict_self",
    // The exec service: descriptors passed to and from its spawner over a
    // socket pair; the programs it runs signalled and reaped.
    "socketpair", "sendmsg", "recvmsg", "pidfd_open", "pidfd_send_signal", "waitid",
    // Identity, read only (changing it happened before the filter).
    "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "capget",
    // clang-format on
});

}  // namespace

std::span<const char* const> allowed_system_calls() {
  return kAllowed;
}

}  // namespace salam::daemon
