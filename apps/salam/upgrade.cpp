#include "upgrade.hpp"

#include <array>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string_view>
#include <utility>

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <salam/log.hpp>

#include "exec/protocol.hpp"
#include "exec/spawner.hpp"

extern char** environ;

namespace salam::daemon {

namespace {

constexpr std::string_view kReadyVariable = "SALAM_UPGRADE_READY_FD";
constexpr std::string_view kReadyMessage = "READY\n";

struct Invocation {
  std::string path;  // the binary, resolved when the process started
  std::vector<std::string> arguments;
  bool replacing = false;  // started by an upgrade
};

Invocation& invocation() {
  static Invocation saved;
  return saved;
}

// The ready pipe's write end, if this process was started by an upgrade.
int& ready_fd() {
  static int fd = -1;
  return fd;
}

bool starts_with_any(std::string_view entry, std::initializer_list<std::string_view> names) {
  for (const auto name : names) {
    if (entry.size() > name.size() && entry.starts_with(name) && entry[name.size()] == '=') {
      return true;
    }
  }
  return false;
}

std::string describe(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("was killed by {}", ::strsignal(WTERMSIG(status)));
  return "stopped";
}

// The new process, as the old one sees it: a child of its own, or one the
// spawner started and reports on.
class Watcher {
 public:
  virtual ~Watcher() = default;
  // Its wait status if it has exited (and has been reaped); never blocks.
  virtual std::optional<int> exited() = 0;
  // Ends it: SIGTERM, then SIGKILL after a grace period; and reaps it.
  virtual void end() = 0;
};

class ChildWatcher final : public Watcher {
 public:
  explicit ChildWatcher(pid_t child) : child_(child) {}
  std::optional<int> exited() override {
    int status = 0;
    if (::waitpid(child_, &status, WNOHANG) == child_) return status;
    return std::nullopt;
  }
  void end() override {
    ::kill(child_, SIGTERM);
    for (int i = 0; i < 50; ++i) {
      if (::waitpid(child_, nullptr, WNOHANG) == child_) return;
      ::usleep(100'000);
    }
    ::kill(child_, SIGKILL);
    ::waitpid(child_, nullptr, 0);
  }

 private:
  pid_t child_;
};

// Waits up to `milliseconds` for the spawner's next reply on `control`.
std::optional<exec::Reply> reply_on(int control, int milliseconds) {
  pollfd waiting{control, POLLIN, 0};
  if (::poll(&waiting, 1, milliseconds) <= 0) return std::nullopt;
  exec::Reply reply{};
  if (::recv(control, &reply, sizeof reply, MSG_DONTWAIT) != sizeof reply) return std::nullopt;
  return reply;
}

class SpawnedWatcher final : public Watcher {
 public:
  explicit SpawnedWatcher(int control) : control_(control) {}
  std::optional<int> exited() override {
    const auto reply = reply_on(control_, 0);
    if (reply && reply->kind == exec::ReplyKind::exited) return reply->value;
    return std::nullopt;
  }
  void end() override {
    for (const int number : {SIGTERM, SIGKILL}) {
      const exec::Signal signal{number};
      (void)::send(control_, &signal, sizeof signal, MSG_NOSIGNAL);
      const auto reply = reply_on(control_, 5000);
      if (reply && reply->kind == exec::ReplyKind::exited) return;
    }
  }

 private:
  int control_;
};

struct Outcome {
  std::string failure;  // empty: the new process is ready
  bool reaped = false;  // the new process has exited and been waited for
};

// Waits for the ready message on `fd` until `timeout`.
Outcome wait_for_ready(int fd, Watcher& child, Duration timeout) {
  const TimePoint deadline = Clock::now() + timeout;
  std::string received;
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      return {fmt::format("was not ready within {} ms",
                          std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count())};
    }
    pollfd waiting{fd, POLLIN, 0};
    const int ready = ::poll(&waiting, 1, static_cast<int>(std::min<long>(left.count(), INT_MAX)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    char buffer[64];
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n > 0) {
      received.append(buffer, static_cast<std::size_t>(n));
      if (received.starts_with(kReadyMessage)) return {};
      if (received.size() >= kReadyMessage.size()) return {"sent a garbled ready message"};
      continue;
    }
    // The pipe closed without the message: the new process is gone, or
    // going.
    for (int i = 0; i < 50; ++i) {
      if (const auto status = child.exited()) return {describe(*status), true};
      ::usleep(100'000);
    }
    return {"closed its ready pipe"};
  }
}

pid_t await_ready(int ready, Watcher& watcher, pid_t child, Duration timeout) {
  log::flush_thread_buffer();
  const Outcome outcome = wait_for_ready(ready, watcher, timeout);
  ::close(ready);
  if (!outcome.failure.empty()) {
    if (!outcome.reaped) watcher.end();
    log::error("upgrade failed: the new process {}; this one serves on", outcome.failure);
    return 0;
  }
  return child;
}

// Through the spawner, which is not confined: a process started by this
// one would inherit its system call filter and Landlock rules (no
// io_uring, no exec service of its own) and its dropped privileges.
pid_t start_spawned(const std::vector<int>& sockets, Duration timeout) {
  int pipe[2];
  if (::pipe2(pipe, O_CLOEXEC) != 0) {
    log::error("upgrade failed: cannot make the ready pipe: {}", std::strerror(errno));
    return 0;
  }
  int control[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, control) != 0) {
    log::error("upgrade failed: cannot make a socket pair: {}", std::strerror(errno));
    ::close(pipe[0]);
    ::close(pipe[1]);
    return 0;
  }
  const int handed = exec::hand_over_successor(control[1], pipe[1], sockets);
  ::close(control[1]);
  ::close(pipe[1]);
  const auto started = handed == 0 ? reply_on(control[0], 5000) : std::nullopt;
  if (!started || started->kind != exec::ReplyKind::started) {
    log::error("upgrade failed: the spawner did not start the new process ({}); this one serves on",
               handed != 0 ? std::strerror(handed)
               : started   ? std::strerror(started->value)
                           : "no answer");
    ::close(control[0]);
    ::close(pipe[0]);
    return 0;
  }
  log::info("upgrade: started {} as process {} by the spawner, handing it {} listening socket(s)",
            Upgrade::successor().path, started->value, sockets.size());
  SpawnedWatcher watcher(control[0]);
  const pid_t child = await_ready(pipe[0], watcher, started->value, timeout);
  ::close(control[0]);  // the spawner lets a ready successor go on
  return child;
}

}  // namespace

void Upgrade::remember_invocation(int argc, char** argv) {
  Invocation& saved = invocation();
  std::array<char, PATH_MAX> path{};
  const ssize_t length = ::readlink("/proc/self/exe", path.data(), path.size() - 1);
  saved.path = length > 0 ? std::string(path.data(), static_cast<std::size_t>(length)) : argv[0];
  for (int i = 0; i < argc; ++i)
    saved.arguments.emplace_back(argv[i]);
  // Taken once: no child of this process inherits it.
  if (const char* fd = std::getenv(std::string(kReadyVariable).c_str())) {
    char* end = nullptr;
    const long value = std::strtol(fd, &end, 10);
    if (end != fd && *end == '\0' && value > 2 && value < INT_MAX) {
      saved.replacing = true;
      ready_fd() = static_cast<int>(value);
      ::fcntl(ready_fd(), F_SETFD, FD_CLOEXEC);
    }
    ::unsetenv(std::string(kReadyVariable).c_str());
  }
}

bool Upgrade::replacing() noexcept {
  return invocation().replacing;
}

void Upgrade::report_ready() noexcept {
  const int fd = std::exchange(ready_fd(), -1);
  if (fd < 0) return;
  // A pipe's small write is atomic; an old process that is gone gets EPIPE.
  (void)!::write(fd, kReadyMessage.data(), kReadyMessage.size());
  ::close(fd);
}

Upgrade::Successor Upgrade::successor() {
  const Invocation& saved = invocation();
  Successor successor{saved.path, saved.arguments, {}};
  for (char** entry = environ; *entry != nullptr; ++entry) {
    // WATCHDOG_PID names this process; without it the new one takes the
    // watchdog as its own.
    if (starts_with_any(*entry, {"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_PID",
                                 kReadyVariable})) {
      continue;
    }
    successor.environment.emplace_back(*entry);
  }
  return successor;
}

std::vector<std::string> Upgrade::handover_variables(int count) {
  return {fmt::format("LISTEN_FDS={}", count),
          fmt::format("{}={}", kReadyVariable, kFirstSocket + count),
          "LISTEN_PID=" + std::string(20, '\0')};
}

pid_t Upgrade::start(const std::vector<int>& sockets, Duration timeout) {
  if (exec::spawner_started() && sockets.size() <= exec::kMaxSuccessorSockets) {
    return start_spawned(sockets, timeout);
  }
  const int count = static_cast<int>(sockets.size());
  int pipe[2];
  if (::pipe2(pipe, O_CLOEXEC) != 0) {
    log::error("upgrade failed: cannot make the ready pipe: {}", std::strerror(errno));
    return 0;
  }
  const int ready_number = kFirstSocket + count;

  // Everything the child needs is built here: between fork() and exec()
  // only async-signal-safe calls are allowed, so the child only moves
  // descriptors and writes its pid into a slot made for it.
  Successor successor = Upgrade::successor();
  std::vector<std::string>& environment = successor.environment;
  for (auto& variable : handover_variables(count))
    environment.push_back(std::move(variable));
  std::vector<char*> envp;
  for (auto& entry : environment)
    envp.push_back(entry.data());
  envp.push_back(nullptr);
  char* pid_slot = environment.back().data() + std::string_view("LISTEN_PID=").size();
  std::vector<char*> argv;
  for (auto& argument : successor.arguments)
    argv.push_back(argument.data());
  argv.push_back(nullptr);
  const std::string& path = successor.path;

  const pid_t child = ::fork();
  if (child < 0) {
    log::error("upgrade failed: cannot start a process: {}", std::strerror(errno));
    ::close(pipe[0]);
    ::close(pipe[1]);
    return 0;
  }
  if (child == 0) {
    // The sockets go to 3, 4, ... and the pipe after them; first out of the
    // way, since they may sit where others must go.
    const int high = ready_number + 1;
    std::array<int, 1024> moved{};
    if (count + 1 > static_cast<int>(moved.size())) ::_exit(126);
    for (int i = 0; i < count; ++i)
      moved[i] = ::fcntl(sockets[i], F_DUPFD, high);
    moved[count] = ::fcntl(pipe[1], F_DUPFD, high);
    for (int i = 0; i <= count; ++i) {
      if (moved[i] < 0 || ::dup2(moved[i], kFirstSocket + i) < 0) ::_exit(126);
      ::close(moved[i]);
    }
    // LISTEN_PID: this process's pid, in decimal.
    char digits[20];
    int length = 0;
    for (pid_t pid = ::getpid(); pid > 0 && length < 20; pid /= 10)
      digits[length++] = static_cast<char>('0' + pid % 10);
    for (int i = 0; i < length; ++i)
      pid_slot[i] = digits[length - 1 - i];
    pid_slot[length] = '\0';
    ::signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(path.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(pipe[1]);
  log::info("upgrade: started {} as process {}, handing it {} listening socket(s)", path, child,
            count);
  ChildWatcher watcher(child);
  return await_ready(pipe[0], watcher, child, timeout);
}

}  // namespace salam::daemon
