// exec-sandbox: the system calls a program run with it may not make.
//
// Not salam's own filter, which allows only what salam does: the program is
// arbitrary, so this one refuses only what no service program needs and a
// compromised one could use against the machine — loading modules,
// mounting, tracing other processes, new namespaces, BPF, io_uring (whose
// operations no filter sees), keyrings, the clock, rebooting. Each fails
// with EPERM, as under systemd's SystemCallFilter=, so that a program
// probing for a feature goes on without it. With it the program also has
// no new privileges (setuid programs gain nothing).
//
// The filter is built once, in the spawner, and installed by each child
// just before its exec.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <linux/filter.h>

namespace salam::daemon::exec {

class ChildFilter {
 public:
  // Null, with `error` saying why, if it cannot be built.
  static std::optional<ChildFilter> build(std::string& error);

  ChildFilter(const ChildFilter&) = delete;
  ChildFilter& operator=(const ChildFilter&) = delete;
  ChildFilter(ChildFilter&& other) noexcept;
  ChildFilter& operator=(ChildFilter&&) = delete;

  // For seccomp(SECCOMP_SET_MODE_FILTER); valid while this lives.
  const sock_fprog* program() const noexcept { return &program_; }

 private:
  explicit ChildFilter(std::vector<sock_filter> code) noexcept;
  std::vector<sock_filter> code_;
  sock_fprog program_{};
};

}  // namespace salam::daemon::exec
