#include "spawner.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include <fcntl.h>
#include <grp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child_filter.hpp"
#include "launch.hpp"
#include "protocol.hpp"

namespace salam::daemon::exec {

namespace {

constexpr int kChannel = 3;  // the spawner's end, once it has moved there
constexpr int kDescriptorsPerRun = 3;
constexpr int kRunsPerTurn = 8;
std::atomic<int> daemon_end{-1};

void send_reply(int control, ReplyKind kind, std::int32_t value) noexcept {
  const Reply reply{kind, value};
  // Never blocks the spawner: a control socket holds a few messages at most.
  (void)::send(control, &reply, sizeof reply, MSG_DONTWAIT | MSG_NOSIGNAL);
}

template <typename T>
bool contains(const std::vector<T>& set, T value) {
  return std::find(set.begin(), set.end(), value) != set.end();
}

class Spawner {
 public:
  explicit Spawner(const SpawnerPolicy& policy) : policy_(policy), buffer_(kMaxRequest) {}

  [[noreturn]] void run() {
    setup();
    for (;;) {
      std::array<epoll_event, 64> events{};
      const int ready = ::epoll_wait(epoll_, events.data(), events.size(), -1);
      if (ready < 0 && errno != EINTR) ::_exit(1);
      // Exits first, and a bounded number of new runs per turn: under a
      // flood of connections the programs that ended must still be
      // reported, or their runs would count against exec-max-children.
      bool runs_waiting = false;
      for (int i = 0; i < ready; ++i) {
        const int fd = events[static_cast<std::size_t>(i)].data.fd;
        if (fd == kChannel) {
          runs_waiting = true;
        } else if (fd == signals_) {
          reap();
        } else {
          on_control(fd);
        }
      }
      if (runs_waiting) receive_runs();
    }
  }

 private:
  void setup() {
    ::prctl(PR_SET_NAME, "salam-spawner", 0, 0, 0);
    // Orphans of the programs come here, to be reaped, rather than to init.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    // Children inherit ignored signals through exec: start from the defaults.
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    for (int number = 1; number < NSIG; ++number) {
      if (number != SIGKILL && number != SIGSTOP) ::sigaction(number, &default_action, nullptr);
    }
    // The daemon's stop signals stay blocked (the spawner ends with the
    // daemon, not with a signal to the process group); SIGCHLD arrives
    // through a descriptor.
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGCHLD);
    ::sigprocmask(SIG_BLOCK, &blocked, nullptr);
    signals_ = ::signalfd(-1, &blocked, SFD_CLOEXEC | SFD_NONBLOCK);
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (signals_ < 0 || epoll_ < 0) ::_exit(1);
    ::fcntl(kChannel, F_SETFL, O_NONBLOCK);
    watch(kChannel);
    watch(signals_);
  }

  void watch(int fd) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = fd;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event) != 0) ::_exit(1);
  }

  void forget(int control) {
    ::epoll_ctl(epoll_, EPOLL_CTL_DEL, control, nullptr);
    ::close(control);
    by_control_.erase(control);
  }

  // Level-triggered: runs left for the next turn are reported again.
  void receive_runs() {
    for (int turn = 0; turn < kRunsPerTurn; ++turn) {
      char byte = 0;
      iovec data{&byte, 1};
      alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * kDescriptorsPerRun)> space{};
      msghdr message{};
      message.msg_iov = &data;
      message.msg_iovlen = 1;
      message.msg_control = space.data();
      message.msg_controllen = space.size();
      const ssize_t n = ::recvmsg(kChannel, &message, MSG_CMSG_CLOEXEC);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
      if (n <= 0) stop();  // the daemon is gone
      std::array<int, kDescriptorsPerRun> fds{-1, -1, -1};
      std::size_t count = 0;
      for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
           header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
        const std::size_t received = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < received; ++i) {
          int fd = -1;
          std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof fd);
          if (count < fds.size()) {
            fds[count++] = fd;
          } else {
            ::close(fd);
          }
        }
      }
      if (count == fds.size() && (message.msg_flags & MSG_CTRUNC) == 0) {
        start(fds[0], fds[1], fds[2]);
      } else {
        for (std::size_t i = 0; i < count; ++i)
          ::close(fds[i]);
      }
    }
  }

  void start(int control, int stdio, int errors) {
    const ssize_t n = ::recv(control, buffer_.data(), buffer_.size(), MSG_DONTWAIT | MSG_TRUNC);
    std::optional<Request> request;
    if (n > 0 && static_cast<std::size_t>(n) <= buffer_.size()) {
      request = decode(std::span(buffer_.data(), static_cast<std::size_t>(n)));
    }
    pid_t pid = -EPROTO;
    if (request && !permitted(*request)) {
      pid = -EPERM;
    } else if (request) {
      const sock_fprog* filter = nullptr;
      if (request->sandbox) filter = child_filter();
      pid =
          request->sandbox && filter == nullptr ? -ENOSYS : launch(*request, stdio, errors, filter);
    }
    ::close(stdio);
    ::close(errors);
    if (pid < 0) {
      send_reply(control, ReplyKind::failed, -pid);
      ::close(control);
      return;
    }
    send_reply(control, ReplyKind::started, pid);
    by_pid_[pid] = control;
    by_control_[control] = pid;
    watch(control);
  }

  bool permitted(const Request& request) const {
    if (!policy_.restricted) return true;
    if (request.uid ? !contains(policy_.uids, static_cast<uid_t>(*request.uid))
                    : !policy_.allow_own) {
      return false;
    }
    if (request.gid && !contains(policy_.gids, static_cast<gid_t>(*request.gid))) return false;
    return std::all_of(request.groups.begin(), request.groups.end(), [this](std::uint32_t group) {
      return contains(policy_.gids, static_cast<gid_t>(group));
    });
  }

  // Built at the first run that asks for it.
  const sock_fprog* child_filter() {
    if (!filter_tried_) {
      filter_tried_ = true;
      std::string error;
      if (auto built = ChildFilter::build(error)) filter_.emplace(std::move(*built));
    }
    return filter_ ? filter_->program() : nullptr;
  }

  void on_control(int control) {
    const auto found = by_control_.find(control);
    if (found == by_control_.end()) return;
    const pid_t pid = found->second;
    Signal signal{};
    const ssize_t n = ::recv(control, &signal, sizeof signal, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n == static_cast<ssize_t>(sizeof signal)) {
      if (signal.number == SIGTERM || signal.number == SIGKILL) ::kill(-pid, signal.number);
      return;
    }
    // The daemon let go of the program before it ended: it must not outlive
    // its connection.
    ::kill(-pid, SIGKILL);
    by_pid_[pid] = -1;
    forget(control);
  }

  void reap() {
    signalfd_siginfo info{};
    while (::read(signals_, &info, sizeof info) > 0) {
    }
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) return;
      const auto found = by_pid_.find(pid);
      if (found == by_pid_.end()) continue;  // a program's orphan, reaped as subreaper
      // What is left of its process group goes with it, as a service
      // manager stops the rest of a unit whose main process has exited.
      ::kill(-pid, SIGTERM);
      if (found->second >= 0) {
        send_reply(found->second, ReplyKind::exited, status);
        forget(found->second);
      }
      by_pid_.erase(found);
    }
  }

  // The daemon has exited: nothing it ran may stay.
  [[noreturn]] void stop() {
    for (const auto& [pid, control] : by_pid_)
      ::kill(-pid, SIGKILL);
    for (int round = 0; round < 50 && !by_pid_.empty(); ++round) {
      epoll_event event{};
      ::epoll_wait(epoll_, &event, 1, 100);
      reap();
    }
    ::_exit(0);
  }

  SpawnerPolicy policy_;
  std::optional<ChildFilter> filter_;
  bool filter_tried_ = false;
  int epoll_ = -1;
  int signals_ = -1;
  std::vector<std::byte> buffer_;
  std::unordered_map<pid_t, int> by_pid_;  // control descriptor, or -1 once let go
  std::unordered_map<int, pid_t> by_control_;
};

// Started as root for a daemon that drops to --user: so does the spawner,
// for good (no capability survives it).
void drop_to(const Identity& identity) {
  if (::setgroups(identity.groups.size(), identity.groups.data()) != 0 ||
      ::setresgid(identity.gid, identity.gid, identity.gid) != 0 ||
      ::setresuid(identity.uid, identity.uid, identity.uid) != 0) {
    ::_exit(1);
  }
  uid_t real = 0, effective = 0, saved = 0;
  if (::getresuid(&real, &effective, &saved) != 0 || real != identity.uid ||
      effective != identity.uid || saved != identity.uid || ::setuid(0) == 0) {
    ::_exit(1);
  }
}

// In the new process: only the channel and the standard descriptors stay.
[[noreturn]] void become_spawner(int channel, const SpawnerPolicy& policy) {
  // Out of the way first: the channel may have taken a standard number.
  const int moved = ::fcntl(channel, F_DUPFD, 10);
  if (moved < 0) ::_exit(1);
  ::close(channel);
  for (int fd = 0; fd < 3; ++fd) {
    if (::fcntl(fd, F_GETFD) < 0) ::open("/dev/null", O_RDWR);  // takes the lowest free number
  }
  if (::dup2(moved, kChannel) < 0) ::_exit(1);
  ::syscall(SYS_close_range, kChannel + 1U, ~0U, 0U);
  if (policy.become) drop_to(*policy.become);
  Spawner(policy).run();
}

}  // namespace

int start_spawner(const SpawnerPolicy& policy) noexcept {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return errno;
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int error = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    return error;
  }
  if (pid == 0) {
    ::close(fds[0]);
    become_spawner(fds[1], policy);
  }
  ::close(fds[1]);
  daemon_end.store(fds[0]);
  return 0;
}

bool spawner_started() noexcept {
  return daemon_end.load() >= 0;
}

int hand_over(int control, int stdio, int errors) noexcept {
  const int channel = daemon_end.load();
  if (channel < 0) return ENOTCONN;
  char byte = 0;
  iovec data{&byte, 1};
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * kDescriptorsPerRun)> space{};
  msghdr message{};
  message.msg_iov = &data;
  message.msg_iovlen = 1;
  message.msg_control = space.data();
  message.msg_controllen = space.size();
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int) * kDescriptorsPerRun);
  const std::array<int, kDescriptorsPerRun> fds{control, stdio, errors};
  std::memcpy(CMSG_DATA(header), fds.data(), sizeof fds);
  if (::sendmsg(channel, &message, MSG_DONTWAIT | MSG_NOSIGNAL) == 1) return 0;
  return errno;
}

}  // namespace salam::daemon::exec
