// Confinement of the daemon, in the order the start needs it
// (docs/security.md):
//
//   parse the configuration -> Sandbox (look the user up)
//   open listeners, logs, certificates -> confine_files(): no_new_privs, Landlock
//   start the shards (their rings) -> confine_process(): the privilege
//   drop, then the system call filter
//
// Threading: on the main thread. confine_files() must come before any
// thread is started but the log writer, which it restarts.
#pragma once

#include <optional>
#include <string>

#include "config.hpp"
#include "sandbox/privileges.hpp"

namespace salam::daemon {

class Sandbox {
 public:
  // Looks up the user and group; unless `check_only`, also checks that
  // this process can become them. Throws ConfigError.
  Sandbox(const DaemonConfig& config, bool check_only);

  // With --user, as root: creates `path` if it does not exist, owned by
  // the user, so that the process can reopen it after the drop (the
  // access log, at every reload and in the new process of an upgrade).
  // An existing file is left as it is.
  void create_for_user(const std::string& path) const;
  // no_new_privs, always; Landlock over the files a reload or an upgrade
  // must still open, unless the sandbox is off. Throws std::runtime_error.
  void confine_files(const DaemonConfig& config);
  // The privilege drop (with --user), then the system call filter (unless
  // the sandbox is off). Throws std::runtime_error.
  void confine_process();

 private:
  std::optional<Identity> identity_;
  bool enabled_ = true;
  // Said once confined, after the listeners' lines (what Landlock did).
  std::string file_rules_;
};

// A build with the test hooks (SALAM_TEST_HOOKS) tries what SALAM_TEST_PROBE
// names once confined: a forbidden system call, or opening a file.
void run_test_probe() noexcept;

}  // namespace salam::daemon
