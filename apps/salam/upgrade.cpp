#include "upgrade.hpp"

#include <array>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <utility>

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <salam/log.hpp>

extern char** environ;

namespace salam::daemon {

namespace {

constexpr int kFirstSocket = 3;  // SD_LISTEN_FDS_START
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

// Ends `child` (SIGTERM, then SIGKILL after a grace period) and reaps it.
void end(pid_t child) {
  ::kill(child, SIGTERM);
  for (int i = 0; i < 50; ++i) {
    if (::waitpid(child, nullptr, WNOHANG) == child) return;
    ::usleep(100'000);
  }
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
}

struct Outcome {
  std::string failure;  // empty: the new process is ready
  bool reaped = false;  // the new process has exited and been waited for
};

// Waits for the ready message on `fd` until `timeout`.
Outcome wait_for_ready(int fd, pid_t child, Duration timeout) {
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
    int status = 0;
    for (int i = 0; i < 50; ++i) {
      if (::waitpid(child, &status, WNOHANG) == child) return {describe(status), true};
      ::usleep(100'000);
    }
    return {"closed its ready pipe"};
  }
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

pid_t Upgrade::start(const std::vector<int>& sockets, Duration timeout) {
  const Invocation& saved = invocation();
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
  std::vector<std::string> environment;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    // WATCHDOG_PID names this process; without it the new one takes the
    // watchdog as its own.
    if (starts_with_any(*entry, {"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_PID",
                                 kReadyVariable})) {
      continue;
    }
    environment.emplace_back(*entry);
  }
  environment.push_back(fmt::format("LISTEN_FDS={}", count));
  environment.push_back(fmt::format("{}={}", kReadyVariable, ready_number));
  environment.push_back("LISTEN_PID=" + std::string(20, '\0'));
  std::vector<char*> envp;
  for (auto& entry : environment)
    envp.push_back(entry.data());
  envp.push_back(nullptr);
  char* pid_slot = environment.back().data() + std::string_view("LISTEN_PID=").size();
  std::vector<char*> argv;
  std::vector<std::string> arguments = saved.arguments;
  for (auto& argument : arguments)
    argv.push_back(argument.data());
  argv.push_back(nullptr);
  std::string path = saved.path;

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
  log::flush_thread_buffer();
  const Outcome outcome = wait_for_ready(pipe[0], child, timeout);
  ::close(pipe[0]);
  if (!outcome.failure.empty()) {
    if (!outcome.reaped) end(child);
    log::error("upgrade failed: the new process {}; this one serves on", outcome.failure);
    return 0;
  }
  return child;
}

}  // namespace salam::daemon
