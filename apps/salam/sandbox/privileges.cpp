#include "sandbox/privileges.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <salam/printable.hpp>

#include "config.hpp"

namespace salam::daemon {

namespace {

[[noreturn]] void fail(std::string_view what) {
  throw std::runtime_error(
      fmt::format("cannot drop privileges: {}: {}", what, std::strerror(errno)));
}

// getpwnam_r and getgrnam_r, with a buffer that grows as they ask.
template <typename Entry, typename Lookup>
bool look_up(const std::string& name, Entry& entry, std::vector<char>& buffer, Lookup lookup) {
  buffer.resize(1024);
  for (;;) {
    Entry* found = nullptr;
    const int error = lookup(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (error == ERANGE && buffer.size() < (1u << 20)) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    return error == 0 && found != nullptr;
  }
}

std::vector<gid_t> supplementary_groups(const std::string& user, gid_t gid) {
  int count = 16;
  std::vector<gid_t> groups(static_cast<std::size_t>(count));
  while (::getgrouplist(user.c_str(), gid, groups.data(), &count) < 0) {
    groups.resize(static_cast<std::size_t>(count));
  }
  groups.resize(static_cast<std::size_t>(count));
  return groups;
}

// This thread's capabilities become CAP_NET_BIND_SERVICE alone, in every
// set: permitted and effective to bind low ports at a reload, inheritable
// and ambient so that the process an upgrade executes has it too.
void keep_only_net_bind_service() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  const __u32 bit = 1u << CAP_NET_BIND_SERVICE;  // in the first word
  data[0].permitted = data[0].effective = data[0].inheritable = bit;
  if (::syscall(SYS_capset, &header, data) != 0) fail("capset");
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) fail("clearing ambient");
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0) != 0) {
    fail("raising CAP_NET_BIND_SERVICE as ambient");
  }
}

// The bounding set limits what any later exec can gain; needs
// CAP_SETPCAP, so it goes while still root.
void drop_bounding_set() {
  for (int cap = 0; ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; ++cap) {
    if (cap != CAP_NET_BIND_SERVICE && ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      fail("dropping the capability bounding set");
    }
  }
}

void check_ids(const Identity& identity) {
  uid_t ruid, euid, suid;
  gid_t rgid, egid, sgid;
  if (::getresuid(&ruid, &euid, &suid) != 0 || ::getresgid(&rgid, &egid, &sgid) != 0) {
    fail("reading the ids back");
  }
  // setfsuid() returns the id it had; asking for an impossible one changes nothing.
  const auto fsuid = static_cast<uid_t>(::setfsuid(static_cast<uid_t>(-1)));
  const auto fsgid = static_cast<gid_t>(::setfsgid(static_cast<gid_t>(-1)));
  const bool uids =
      ruid == identity.uid && euid == identity.uid && suid == identity.uid && fsuid == identity.uid;
  const bool gids =
      rgid == identity.gid && egid == identity.gid && sgid == identity.gid && fsgid == identity.gid;
  // Root that could become root again is not dropped.
  const bool regained = identity.uid != 0 && ::setuid(0) == 0;
  if (!uids || !gids || regained) {
    throw std::runtime_error(fmt::format(
        "privileges not dropped: uid {}/{}/{}/{} gid {}/{}/{}/{} (real, effective, saved, fs), "
        "wanted {} and {}{}",
        ruid, euid, suid, fsuid, rgid, egid, sgid, fsgid, identity.uid, identity.gid,
        regained ? "; setuid(0) succeeded" : ""));
  }
}

}  // namespace

std::optional<Identity> look_up_identity(const std::string& user, const std::string& group) {
  if (user.empty()) return std::nullopt;
  std::vector<char> buffer;
  passwd account{};
  if (!look_up(user, account, buffer, ::getpwnam_r)) {
    throw ConfigError("", fmt::format("unknown user '{}'", printable(user)));
  }
  Identity identity{user, account.pw_uid, account.pw_gid, {}};
  if (!group.empty()) {
    struct group entry {};
    if (!look_up(group, entry, buffer, ::getgrnam_r)) {
      throw ConfigError("", fmt::format("unknown group '{}'", printable(group)));
    }
    identity.gid = entry.gr_gid;
  }
  identity.groups = supplementary_groups(user, identity.gid);
  return identity;
}

void check_can_become(const Identity& identity) {
  if (::geteuid() == 0) return;
  if (::getuid() == identity.uid && ::geteuid() == identity.uid && ::getgid() == identity.gid &&
      ::getegid() == identity.gid) {
    return;
  }
  throw ConfigError("", fmt::format("user '{}': salam must be started as root to change user "
                                    "(it runs as uid {})",
                                    printable(identity.user), ::getuid()));
}

void become(const Identity& identity) {
  if (::geteuid() != 0) return;  // that user already: check_can_become() said so
  const bool leaving_root = identity.uid != 0;
  if (leaving_root) drop_bounding_set();
  // Only this thread keeps its permitted set through setuid(); the other
  // threads lose every capability with root.
  if (leaving_root && ::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) fail("PR_SET_KEEPCAPS");
  // glibc applies each of these to every thread of the process.
  if (::setgroups(identity.groups.size(), identity.groups.data()) != 0) fail("setgroups");
  if (::setgid(identity.gid) != 0) fail("setgid");
  if (::setuid(identity.uid) != 0) fail("setuid");
  if (leaving_root) {
    keep_only_net_bind_service();
    if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) fail("PR_SET_KEEPCAPS");
  }
  check_ids(identity);
}

}  // namespace salam::daemon
