#include "child_filter.hpp"

#include <cerrno>
#include <cstring>
#include <memory>

#include <seccomp.h>
#include <sys/mman.h>
#include <unistd.h>

namespace salam::daemon::exec {

namespace {

// By name, as libseccomp resolves them for this architecture; a name it
// does not know here is skipped.
constexpr const char* kRefused[] = {
    // the kernel itself: modules, kexec, reboot, swap, accounting
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
    "swapon", "swapoff", "acct",
    // the file system tree: mounts, roots, handles that bypass permissions
    "mount", "umount2", "pivot_root", "chroot", "fsopen", "fsmount", "fsconfig", "move_mount",
    "open_tree", "mount_setattr", "open_by_handle_at", "name_to_handle_at", "quotactl",
    // other processes and the kernel's inside: tracing, BPF, perf, namespaces
    "ptrace", "process_vm_readv", "process_vm_writev", "bpf", "perf_event_open", "unshare", "setns",
    "userfaultfd", "kcmp", "lookup_dcookie", "syslog", "vhangup", "fanotify_init", "iopl", "ioperm",
    // io_uring: its operations are out of any filter's sight
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    // keyrings
    "keyctl", "add_key", "request_key",
    // the machine's clock and names
    "settimeofday", "clock_settime", "adjtimex", "clock_adjtime", "sethostname", "setdomainname"};

struct ContextDeleter {
  void operator()(scmp_filter_ctx context) const noexcept { seccomp_release(context); }
};

}  // namespace

ChildFilter::ChildFilter(std::vector<sock_filter> code) noexcept : code_(std::move(code)) {
  program_.len = static_cast<unsigned short>(code_.size());
  program_.filter = code_.data();
}

ChildFilter::ChildFilter(ChildFilter&& other) noexcept : ChildFilter(std::move(other.code_)) {}

std::optional<ChildFilter> ChildFilter::build(std::string& error) {
  std::unique_ptr<void, ContextDeleter> context(seccomp_init(SCMP_ACT_ALLOW));
  if (!context) {
    error = "seccomp_init failed";
    return std::nullopt;
  }
  // Another architecture's calls (an x32 or i386 program) are refused
  // outright: the names above would not match them.
  if (seccomp_attr_set(context.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) != 0) {
    error = "cannot refuse other architectures";
    return std::nullopt;
  }
  for (const char* name : kRefused) {
    const int number = seccomp_syscall_resolve_name(name);
    if (number == __NR_SCMP_ERROR) continue;
    if (const int rc = seccomp_rule_add(context.get(), SCMP_ACT_ERRNO(EPERM), number, 0); rc != 0) {
      error = std::string("cannot refuse ") + name + ": " + std::strerror(-rc);
      return std::nullopt;
    }
  }
  // libseccomp 2.5 writes the program to a descriptor only.
  const int memory = ::memfd_create("salam-child-filter", MFD_CLOEXEC);
  if (memory < 0) {
    error = std::string("memfd_create: ") + std::strerror(errno);
    return std::nullopt;
  }
  std::vector<sock_filter> code;
  const int rc = seccomp_export_bpf(context.get(), memory);
  const off_t size = ::lseek(memory, 0, SEEK_END);
  if (rc == 0 && size > 0 && size % static_cast<off_t>(sizeof(sock_filter)) == 0) {
    code.resize(static_cast<std::size_t>(size) / sizeof(sock_filter));
    if (::pread(memory, code.data(), static_cast<std::size_t>(size), 0) != size) code.clear();
  }
  ::close(memory);
  if (code.empty()) {
    error = "cannot export the filter";
    return std::nullopt;
  }
  return ChildFilter(std::move(code));
}

}  // namespace salam::daemon::exec
