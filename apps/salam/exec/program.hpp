// The exec service's program, as a listener's configuration gives it.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <salam/time.hpp>

#include "protocol.hpp"
#include "sandbox/privileges.hpp"

namespace salam::daemon::exec {

using daemon::Identity;

// What the configuration says (exec, exec-env, exec-user, ...).
struct ExecSettings {
  std::vector<std::string> command;  // the program and its arguments
  std::vector<std::string> env;      // "NAME" passes salam's own; "NAME=VALUE" sets
  std::string user;
  std::string group;
  std::array<std::optional<std::uint64_t>, kLimits> limits{};
  Duration timeout{};  // 0: none
  std::size_t max_children = 100;
  bool sandbox = false;
};

// What it comes to once checked: the request every run starts from, and
// the runs under way.
struct ExecProgram {
  Request base;  // path, argv, the configured environment, identity, limits
  Duration timeout{};
  std::size_t max_children = 0;
  // Runs under way, over all shards. A reload makes a new program: runs
  // of the old configuration count against its limit, not the new one's.
  mutable std::atomic<std::size_t> children{0};
};

// Checks `settings`: the program must exist and be executable (a name
// without a slash is looked up in PATH), the user and group must exist.
// Without exec-user the program runs as `fallback` (salam's --user), if
// any. Throws ConfigError naming `origin`.
std::shared_ptr<const ExecProgram> make_program(const ExecSettings& settings,
                                                std::string_view origin, const Identity* fallback);

// Parses a resource limit: a count, or bytes with an optional K, M or G
// suffix (address space). Throws ConfigError naming `where`.
std::uint64_t parse_limit(std::string_view text, Limit limit, std::string_view where);

// The keys that name a resource limit, "exec-rlimit-as" and so on.
std::string_view limit_key(Limit limit) noexcept;

}  // namespace salam::daemon::exec
