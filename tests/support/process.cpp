#include "process.hpp"

#include <cerrno>
#include <stdexcept>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace salam::testing {

ChildProcess::ChildProcess(std::vector<std::string> argv) {
  int out[2];
  int err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe2 failed");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  std::vector<char*> args;
  for (auto& arg : argv)
    args.push_back(arg.data());
  args.push_back(nullptr);
  int result = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  ::close(err[1]);
  stdout_ = out[0];
  stderr_ = err[0];
  ::fcntl(stderr_, F_SETFL, O_NONBLOCK);
  if (result != 0) throw std::runtime_error("cannot start " + argv[0]);
}

ChildProcess::~ChildProcess() {
  if (!reaped_) stop(SIGKILL, std::chrono::seconds(5));
  ::close(stdout_);
  ::close(stderr_);
}

std::string ChildProcess::read_line(Duration timeout) {
  const TimePoint deadline = Clock::now() + timeout;
  for (;;) {
    auto newline = stdout_buffer_.find('\n');
    if (newline != std::string::npos) {
      std::string line = stdout_buffer_.substr(0, newline);
      stdout_buffer_.erase(0, newline + 1);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return {};
    pollfd poll_fd{stdout_, POLLIN, 0};
    if (::poll(&poll_fd, 1, static_cast<int>(left.count())) <= 0) continue;
    char chunk[512];
    ssize_t n = ::read(stdout_, chunk, sizeof chunk);
    if (n <= 0) return {};
    stdout_buffer_.append(chunk, static_cast<std::size_t>(n));
  }
}

std::string ChildProcess::drain_stderr() {
  char chunk[4096];
  ssize_t n;
  while ((n = ::read(stderr_, chunk, sizeof chunk)) > 0) {
    stderr_text_.append(chunk, static_cast<std::size_t>(n));
  }
  return stderr_text_;
}

bool ChildProcess::alive() {
  if (reaped_) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    reaped_ = true;
    status_ = status;
    return false;
  }
  return true;
}

int ChildProcess::stop(int signal, Duration timeout) {
  if (!reaped_) {
    ::kill(pid_, signal);
    const TimePoint deadline = Clock::now() + timeout;
    while (alive() && Clock::now() < deadline) {
      drain_stderr();  // a full pipe would block the child's logging
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status_, 0);
      reaped_ = true;
      return -1;
    }
  }
  drain_stderr();
  return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
}

}  // namespace salam::testing
