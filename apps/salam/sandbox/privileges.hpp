// Who salam runs as once its listeners are open: the user (and group) the
// configuration names, looked up at start, and the switch to it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace salam::daemon {

struct Identity {
  std::string user;  // the name, for messages
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary: the user's, as its login would have
};

// Looks `user` and `group` up (group empty: the user's own). Throws
// ConfigError naming an unknown one; nullopt when `user` is empty.
std::optional<Identity> look_up_identity(const std::string& user, const std::string& group);

// Throws ConfigError unless this process can become `identity`: it runs
// as root, or as that user and group already.
void check_can_become(const Identity& identity);

// Sets the supplementary groups, the group and the user, in that order,
// on every thread; keeps CAP_NET_BIND_SERVICE on the calling thread only
// (and across an exec, as an ambient capability) and nothing else, and
// checks that no id is left 0. Does nothing when not root (the process is
// that user already). Throws std::runtime_error.
void become(const Identity& identity);

}  // namespace salam::daemon
