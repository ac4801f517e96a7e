#include "sandbox/landlock.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/landlock.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <salam/printable.hpp>
#include <salam/socket.hpp>

// Rights of later ABIs than the headers of the build know of (the kernel
// tells which it has).
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif

namespace salam::daemon {

namespace {

// glibc has no wrappers for these.
int create_ruleset(const landlock_ruleset_attr* attr, std::size_t size, std::uint32_t flags) {
  return static_cast<int>(::syscall(SYS_landlock_create_ruleset, attr, size, flags));
}
int add_rule(int ruleset, const landlock_path_beneath_attr& rule) {
  return static_cast<int>(
      ::syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0));
}
int restrict_self(int ruleset) {
  return static_cast<int>(::syscall(SYS_landlock_restrict_self, ruleset, 0));
}

// What each ABI version handles: v1 the first thirteen rights, v2 REFER
// (renames and links across directories), v3 TRUNCATE, v5 IOCTL_DEV.
std::uint64_t handled_by(int abi) {
  std::uint64_t rights = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1;
  if (abi >= 2) rights |= LANDLOCK_ACCESS_FS_REFER;
  if (abi >= 3) rights |= LANDLOCK_ACCESS_FS_TRUNCATE;
  if (abi >= 5) rights |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
  return rights;
}

constexpr std::uint64_t kFileRights = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
                                      LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE |
                                      LANDLOCK_ACCESS_FS_IOCTL_DEV;

std::uint64_t rights_of(Access access) {
  switch (access) {
    case Access::read:
      return LANDLOCK_ACCESS_FS_READ_FILE;
    case Access::execute:
      return LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_EXECUTE;
    case Access::write:
      return LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_MAKE_REG;
    case Access::sockets:
      return LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_REMOVE_FILE;
    case Access::replace:
      return LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |
             LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_REMOVE_FILE;
  }
  return 0;
}

[[noreturn]] void fail(std::string_view what) {
  throw std::runtime_error(fmt::format("Landlock: {}: {}", what, std::strerror(errno)));
}

}  // namespace

std::string restrict_file_system(const std::vector<PathRule>& rules) {
  const int abi = create_ruleset(nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  if (abi < 0) {
    // ENOSYS: built without it; EOPNOTSUPP: not enabled at boot.
    return fmt::format("Landlock: not available here ({}); the file system is not restricted",
                       std::strerror(errno));
  }
  const std::uint64_t handled = handled_by(abi);
  landlock_ruleset_attr attr{};
  attr.handled_access_fs = handled;
  FileDescriptor ruleset(create_ruleset(&attr, sizeof attr, 0));
  if (!ruleset) fail("landlock_create_ruleset");
  std::size_t added = 0;
  for (const PathRule& rule : rules) {
    FileDescriptor path(::open(rule.path.c_str(), O_PATH | O_CLOEXEC));
    struct stat status {};
    if (!path || ::fstat(path.get(), &status) != 0) continue;  // nothing there to allow
    landlock_path_beneath_attr beneath{};
    beneath.parent_fd = path.get();
    beneath.allowed_access = rights_of(rule.access) & handled;
    if (!S_ISDIR(status.st_mode)) beneath.allowed_access &= kFileRights;
    if (beneath.allowed_access == 0) continue;
    if (add_rule(ruleset.get(), beneath) != 0) fail("rule for " + printable(rule.path, 256));
    ++added;
  }
  // Required of a process without CAP_SYS_ADMIN; salam sets it anyway.
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail("PR_SET_NO_NEW_PRIVS");
  if (restrict_self(ruleset.get()) != 0) fail("landlock_restrict_self");
  return fmt::format("Landlock (ABI {}): files may be opened beneath {} path(s) only", abi, added);
}

}  // namespace salam::daemon
