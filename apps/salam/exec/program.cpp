#include "program.hpp"

#include <cstdlib>

#include <fmt/format.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <salam/printable.hpp>

#include "../config.hpp"

namespace salam::daemon::exec {

namespace {

// argv and the environment together: the spawner reads one message of at
// most kMaxRequest bytes, and the kernel's own limit is far above it.
constexpr std::size_t kMaxCommandBytes = 64 * 1024;

bool is_executable_file(const std::string& path) {
  struct stat status {};
  return ::stat(path.c_str(), &status) == 0 && S_ISREG(status.st_mode) &&
         ::access(path.c_str(), X_OK) == 0;
}

std::string resolve(const std::string& name, std::string_view origin) {
  if (name.find('/') != std::string::npos) {
    if (!is_executable_file(name)) {
      throw ConfigError(origin, fmt::format("exec: {} is not an executable file", printable(name)));
    }
    return name;
  }
  const char* path = std::getenv("PATH");
  std::string_view directories = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!directories.empty()) {
    const auto colon = directories.find(':');
    std::string candidate(directories.substr(0, colon));
    directories = colon == std::string_view::npos ? "" : directories.substr(colon + 1);
    if (candidate.empty()) continue;  // the current directory is never searched
    candidate += '/';
    candidate += name;
    if (is_executable_file(candidate)) return candidate;
  }
  throw ConfigError(origin, fmt::format("exec: no executable {} in PATH", printable(name)));
}

void set_identity(const ExecSettings& settings, Request& request, std::string_view origin,
                  const Identity* fallback) {
  if (settings.user.empty() && fallback != nullptr) {
    request.uid = fallback->uid;
    request.gid = fallback->gid;
    request.groups.assign(fallback->groups.begin(), fallback->groups.end());
  }
  if (!settings.user.empty()) {
    const passwd* user = ::getpwnam(settings.user.c_str());
    if (user == nullptr) {
      throw ConfigError(origin, fmt::format("exec-user: no user {}", printable(settings.user)));
    }
    request.uid = user->pw_uid;
    request.gid = user->pw_gid;
    // The user's own supplementary groups, as login(1) would give them.
    int count = 64;
    std::vector<gid_t> groups(static_cast<std::size_t>(count));
    if (::getgrouplist(user->pw_name, user->pw_gid, groups.data(), &count) < 0) {
      groups.resize(static_cast<std::size_t>(count));
      ::getgrouplist(user->pw_name, user->pw_gid, groups.data(), &count);
    }
    groups.resize(static_cast<std::size_t>(count));
    request.groups.assign(groups.begin(), groups.end());
  }
  if (!settings.group.empty()) {
    const group* found = ::getgrnam(settings.group.c_str());
    if (found == nullptr) {
      throw ConfigError(origin, fmt::format("exec-group: no group {}", printable(settings.group)));
    }
    request.gid = found->gr_gid;
    if (request.uid) request.groups.assign(1, found->gr_gid);
  }
}

}  // namespace

std::shared_ptr<const ExecProgram> make_program(const ExecSettings& settings,
                                                std::string_view origin, const Identity* fallback) {
  if (settings.command.empty() || settings.command.front().empty()) {
    throw ConfigError(origin,
                      "the exec service needs a program: exec = [\"/path\", \"arg\", ...] "
                      "(or salam ... --service exec -- PROGRAM ARGS...)");
  }
  // The spawner is sent NUL-terminated strings.
  for (const auto* list : {&settings.command, &settings.env}) {
    for (const auto& text : *list) {
      if (text.find('\0') != std::string::npos) {
        throw ConfigError(origin, fmt::format("exec: '{}' holds a NUL byte", printable(text)));
      }
    }
  }
  auto program = std::make_shared<ExecProgram>();
  Request& base = program->base;
  base.path = resolve(settings.command.front(), origin);
  base.argv = settings.command;
  std::size_t bytes = 0;
  for (const auto& entry : settings.env) {
    const auto equals = entry.find('=');
    const std::string name = entry.substr(0, equals);
    if (name.empty()) {
      throw ConfigError(origin, fmt::format("exec-env: bad entry '{}'", printable(entry)));
    }
    if (equals != std::string::npos) {
      base.env.push_back(entry);
    } else if (const char* value = std::getenv(name.c_str())) {
      base.env.push_back(name + "=" + value);
    }
  }
  for (const auto* list : {&base.argv, &base.env}) {
    for (const auto& text : *list)
      bytes += text.size() + 1;
  }
  if (bytes > kMaxCommandBytes) {
    throw ConfigError(origin, fmt::format("exec: the command and exec-env come to {} bytes, more "
                                          "than {}",
                                          bytes, kMaxCommandBytes));
  }
  set_identity(settings, base, origin, fallback);
  base.limits = settings.limits;
  base.sandbox = settings.sandbox;
  program->timeout = settings.timeout;
  program->max_children = settings.max_children;
  return program;
}

std::string_view limit_key(Limit limit) noexcept {
  switch (limit) {
    case Limit::address_space:
      return "exec-rlimit-as";
    case Limit::processes:
      return "exec-rlimit-nproc";
    case Limit::files:
      return "exec-rlimit-nofile";
    case Limit::cpu_seconds:
      return "exec-rlimit-cpu";
  }
  return "exec-rlimit";
}

std::uint64_t parse_limit(std::string_view text, Limit limit, std::string_view where) {
  std::uint64_t scale = 1;
  if (limit == Limit::address_space && !text.empty()) {
    switch (text.back()) {
      case 'K':
        scale = 1ULL << 10;
        break;
      case 'M':
        scale = 1ULL << 20;
        break;
      case 'G':
        scale = 1ULL << 30;
        break;
      default:
        break;
    }
    if (scale != 1) text.remove_suffix(1);
  }
  std::uint64_t value = 0;
  bool valid = !text.empty() && text.size() <= 12;
  for (const char c : text) {
    if (c < '0' || c > '9') valid = false;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (!valid || value == 0) {
    throw ConfigError(
        where, fmt::format("{}: '{}' is not a positive {}", limit_key(limit), printable(text),
                           limit == Limit::address_space ? "size (bytes, or with K, M or G)"
                                                         : "whole number"));
  }
  return value * scale;
}

}  // namespace salam::daemon::exec
