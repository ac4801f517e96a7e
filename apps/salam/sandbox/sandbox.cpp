#include "sandbox/sandbox.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <salam/log.hpp>

#include "sandbox/landlock.hpp"
#include "sandbox/seccomp_filter.hpp"

namespace salam::daemon {

namespace {

// A sanitizer's runtime makes system calls and opens files of its own
// (/proc/self/maps, its reports, symbolizers), which no allowlist of
// salam's foresees.
#ifdef SALAM_SANITIZED
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

std::string parent_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// A file read again at a reload: its directory, so that a file replaced
// by a rename (as editors and certificate renewals do) is still readable,
// and the directory of what a link points to.
void add_readable(std::vector<PathRule>& rules, const std::string& path) {
  if (path.empty()) return;
  rules.push_back({parent_of(path), Access::read});
  if (char* real = ::realpath(path.c_str(), nullptr)) {
    rules.push_back({parent_of(real), Access::read});
    std::free(real);
  }
}

std::vector<PathRule> file_rules(const DaemonConfig& config, bool changes_user) {
  std::vector<PathRule> rules;
  add_readable(rules, config.config_file);
  for (const auto& listener : config.listeners) {
    add_readable(rules, listener.access.rules_file);
    add_readable(rules, listener.options.quotes_file);
    for (const auto& file : listener.tls.cert_files)
      add_readable(rules, file);
    for (const auto& file : listener.tls.key_files)
      add_readable(rules, file);
    add_readable(rules, listener.tls.client_ca_file);
    add_readable(rules, listener.tls.crl_file);
    // A reload binds new Unix listeners and removes the files of old ones.
    if (listener.address.starts_with("unix:")) {
      rules.push_back({parent_of(listener.address.substr(5)), Access::sockets});
    }
  }
  if (config.admin.starts_with("unix:")) {
    rules.push_back({parent_of(config.admin.substr(5)), Access::sockets});
  }
  if (!config.access_log.empty()) {
    // A file is reopened after rotation, maybe as a new file; a FIFO or a
    // device is reopened itself.
    struct stat status {};
    const bool special =
        ::stat(config.access_log.c_str(), &status) == 0 && !S_ISREG(status.st_mode);
    rules.push_back({special ? config.access_log : parent_of(config.access_log), Access::write});
  }
  // Written again by the new process of an upgrade; removed at exit.
  if (!config.pid_file.empty()) rules.push_back({parent_of(config.pid_file), Access::replace});
  // The upgrade executes salam again (a new binary in the same place),
  // with the dynamic loader and the libraries.
  if (char* self = ::realpath("/proc/self/exe", nullptr)) {
    rules.push_back({parent_of(self), Access::execute});
    std::free(self);
  }
  for (const char* libraries : {"/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib"})
    rules.push_back({libraries, Access::execute});
  for (const char* file : {"/etc/ld.so.cache", "/etc/ld.so.preload", "/etc/ssl/openssl.cnf",
                           "/dev/null", "/proc/sys/net/core/somaxconn"}) {
    rules.push_back({file, Access::read});
  }
  // The new process of an upgrade looks the user up again, and a reload
  // the users exec programs run as.
  const bool names_exec_user =
      std::any_of(config.listeners.begin(), config.listeners.end(), [](const auto& listener) {
        return !listener.options.exec_settings.user.empty() ||
               !listener.options.exec_settings.group.empty();
      });
  if (changes_user || names_exec_user) {
    for (const char* file : {"/etc/nsswitch.conf", "/etc/passwd", "/etc/group"})
      rules.push_back({file, Access::read});
  }
  return rules;
}

}  // namespace

Sandbox::Sandbox(const DaemonConfig& config, bool check_only)
    : identity_(look_up_identity(config.user, config.group)), enabled_(config.sandbox) {
  if (identity_ && !check_only) check_can_become(*identity_);
}

void Sandbox::create_for_user(const std::string& path) const {
  if (!identity_ || path.empty() || ::geteuid() != 0) return;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
  if (fd < 0) return;  // there already, or not to be made: opening it says why
  if (::fchown(fd, identity_->uid, identity_->gid) != 0) {
    log::warning("cannot give {} to user {}: {}", path, identity_->user, std::strerror(errno));
  }
  ::close(fd);
}

void Sandbox::confine_files(const DaemonConfig& config) {
  // Nothing salam executes (itself, at an upgrade) gains privileges, on
  // any thread: they inherit it.
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    throw std::runtime_error(std::string("PR_SET_NO_NEW_PRIVS: ") + std::strerror(errno));
  }
  // no_new_privs and Landlock hold for the calling thread and the threads
  // it starts later: the log writer, already running, starts again once
  // both are in place.
  if (enabled_ && !kSanitized) {
    file_rules_ = restrict_file_system(file_rules(config, identity_.has_value()));
  }
  if (!log::restart_writer(std::chrono::seconds(1))) {
    log::warning("the log writer did not stop in time: it keeps running unconfined");
  }
}

void Sandbox::confine_process() {
  if (identity_) {
    become(*identity_);
    log::info("running as user {} (uid {}, gid {}, {} group(s)), with CAP_NET_BIND_SERVICE only",
              identity_->user, identity_->uid, identity_->gid, identity_->groups.size());
  }
  if (enabled_ && kSanitized) {
    log::info(
        "sanitizer build: no system call filter and no Landlock (the sanitizer's runtime "
        "makes calls and opens files of its own)");
  } else if (enabled_) {
    log::info("{}", file_rules_);
    install_system_call_filter();
    log::info("system call filter installed: {} calls allowed, anything else kills the process",
              allowed_system_calls().size());
  }
  run_test_probe();
}

}  // namespace salam::daemon
