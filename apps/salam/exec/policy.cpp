// The spawner's policy, from the configuration at start (spawner.hpp).
#include <algorithm>

#include <unistd.h>

#include "config.hpp"
#include "spawner.hpp"

namespace salam::daemon::exec {

namespace {

template <typename T>
void add(std::vector<T>& set, T value) {
  if (std::find(set.begin(), set.end(), value) == set.end()) set.push_back(value);
}

}  // namespace

SpawnerPolicy spawner_policy(const DaemonConfig& config) {
  SpawnerPolicy policy;
  if (::geteuid() != 0) return policy;  // the kernel keeps it to its own user
  const bool names_identity =
      std::any_of(config.listeners.begin(), config.listeners.end(), [](const auto& listener) {
        const ExecSettings& exec = listener.options.exec_settings;
        return listener.service == "exec" && (!exec.user.empty() || !exec.group.empty());
      });
  const auto daemon_identity = look_up_identity(config.user, config.group);
  if (!names_identity) {
    policy.become = daemon_identity;
    return policy;
  }
  policy.restricted = true;
  for (const auto& listener : config.listeners) {
    if (listener.service != "exec" || !listener.options.exec) continue;
    const Request& base = listener.options.exec->base;
    if (!base.uid) policy.allow_own = true;
    if (base.uid) add(policy.uids, static_cast<uid_t>(*base.uid));
    if (base.gid) add(policy.gids, static_cast<gid_t>(*base.gid));
    for (const auto group : base.groups)
      add(policy.gids, static_cast<gid_t>(group));
  }
  return policy;
}

}  // namespace salam::daemon::exec
