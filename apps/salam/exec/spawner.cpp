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
// What one message on the channel carries at most (the kernel's SCM_MAX_FD).
constexpr std::size_t kMaxDescriptors = 253;
// The one byte of a channel message says what it asks for.
constexpr char kRunMessage = 0;        // a program: control, stdio, stderr
constexpr char kUpgradeMessage = 'U';  // a successor: control, ready pipe, sockets
std::atomic<int> daemon_end{-1};

// A channel message: one byte saying what it asks for, and room for the
// descriptors it carries.
struct ChannelMessage {
  char kind = 0;
  iovec data{&kind, 1};
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * kMaxDescriptors)> space{};
  msghdr header{};

  explicit ChannelMessage(std::size_t descriptors) {
    header.msg_iov = &data;
    header.msg_iovlen = 1;
    header.msg_control = space.data();
    header.msg_controllen = CMSG_SPACE(sizeof(int) * descriptors);
  }
  ChannelMessage(const ChannelMessage&) = delete;
  ChannelMessage& operator=(const ChannelMessage&) = delete;
};

void send_reply(int control, ReplyKind kind, std::int32_t value) noexcept {
  const Reply reply{kind, value};
  // Never blocks the spawner: a control socket holds a few messages at most.
  (void)::send(control, &reply, sizeof reply, MSG_DONTWAIT | MSG_NOSIGNAL);
}

template <typename T>
bool contains(const std::vector<T>& set, T value) {
  return std::find(set.begin(), set.end(), value) != set.end();
}

// A process this spawner started, and the daemon's end of it.
struct Child {
  int control = -1;        // -1 once the daemon let go
  bool successor = false;  // an upgrade's new salam: it outlives its control socket
};

class Spawner {
 public:
  Spawner(const SpawnerPolicy& policy, Upgrade::Successor successor)
      : policy_(policy), successor_(std::move(successor)), buffer_(kMaxRequest) {}

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
      ChannelMessage incoming(kMaxDescriptors);
      msghdr& message = incoming.header;
      const ssize_t n = ::recvmsg(kChannel, &message, MSG_CMSG_CLOEXEC);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
      if (n <= 0) stop();  // the daemon is gone
      std::vector<int> fds;
      for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
           header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
        const std::size_t received = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < received; ++i) {
          int fd = -1;
          std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof fd);
          fds.push_back(fd);
        }
      }
      const bool whole = (message.msg_flags & MSG_CTRUNC) == 0;
      if (whole && incoming.kind == kRunMessage && fds.size() == kDescriptorsPerRun) {
        start(fds[0], fds[1], fds[2]);
      } else if (whole && incoming.kind == kUpgradeMessage && fds.size() >= 2) {
        start_successor(fds);
      } else {
        for (const int fd : fds)
          ::close(fd);
      }
    }
  }

  // fds: control, the ready pipe, the listening sockets.
  void start_successor(const std::vector<int>& fds) {
    const int control = fds[0];
    const std::vector<int> sockets(fds.begin() + 2, fds.end());
    const pid_t pid = launch_successor(successor_, sockets, fds[1]);
    for (std::size_t i = 1; i < fds.size(); ++i)
      ::close(fds[i]);
    answer(control, pid, true);
  }

  // Tells the daemon how a start went; a started process is watched.
  void answer(int control, pid_t pid, bool successor) {
    if (pid < 0) {
      send_reply(control, ReplyKind::failed, -pid);
      ::close(control);
      return;
    }
    send_reply(control, ReplyKind::started, pid);
    by_pid_[pid] = Child{control, successor};
    by_control_[control] = pid;
    watch(control);
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
    answer(control, pid, false);
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
    Child& child = by_pid_[pid];
    if (n == static_cast<ssize_t>(sizeof signal)) {
      // A program's whole process group; a successor, which shares salam's
      // group, alone.
      if (signal.number == SIGTERM || signal.number == SIGKILL)
        ::kill(child.successor ? pid : -pid, signal.number);
      return;
    }
    // The daemon let go of a program before it ended: it must not outlive
    // its connection. A successor that was ready goes on, as salam.
    if (!child.successor) ::kill(-pid, SIGKILL);
    child.control = -1;
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
      if (!found->second.successor) ::kill(-pid, SIGTERM);
      if (found->second.control >= 0) {
        send_reply(found->second.control, ReplyKind::exited, status);
        forget(found->second.control);
      }
      by_pid_.erase(found);
    }
  }

  // The daemon has exited: nothing it ran may stay.
  [[noreturn]] void stop() {
    // A successor serves on: it is salam now.
    std::erase_if(by_pid_, [](const auto& entry) { return entry.second.successor; });
    for (const auto& [pid, child] : by_pid_)
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
  Upgrade::Successor successor_;
  std::vector<std::byte> buffer_;
  std::unordered_map<pid_t, Child> by_pid_;
  std::unordered_map<int, pid_t> by_control_;
};

// Started as root for a daemon that drops to --user: so does the spawner,
// as the daemon does (CAP_NET_BIND_SERVICE kept as an ambient capability,
// for the successor of an upgrade; programs start without it).
void drop_to(const Identity& identity) {
  try {
    become(identity);
  } catch (const std::exception&) {
    ::_exit(1);
  }
}

// In the new process: only the channel and the standard descriptors stay.
[[noreturn]] void become_spawner(int channel, const SpawnerPolicy& policy,
                                 Upgrade::Successor successor) {
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
  Spawner(policy, std::move(successor)).run();
}

}  // namespace

int start_spawner(const SpawnerPolicy& policy) noexcept {
  Upgrade::Successor successor;
  try {
    successor = Upgrade::successor();
  } catch (const std::bad_alloc&) {
    return ENOMEM;
  }
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
    become_spawner(fds[1], policy, std::move(successor));
  }
  ::close(fds[1]);
  daemon_end.store(fds[0]);
  return 0;
}

bool spawner_started() noexcept {
  return daemon_end.load() >= 0;
}

namespace {

int send_on_channel(char kind, const std::vector<int>& fds) noexcept {
  const int channel = daemon_end.load();
  if (channel < 0) return ENOTCONN;
  if (fds.size() > kMaxDescriptors) return E2BIG;
  ChannelMessage sent(fds.size());
  sent.kind = kind;
  msghdr& message = sent.header;
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  std::memcpy(CMSG_DATA(header), fds.data(), sizeof(int) * fds.size());
  if (::sendmsg(channel, &message, MSG_DONTWAIT | MSG_NOSIGNAL) == 1) return 0;
  return errno;
}

}  // namespace

int hand_over(int control, int stdio, int errors) noexcept {
  try {
    return send_on_channel(kRunMessage, {control, stdio, errors});
  } catch (const std::bad_alloc&) {
    return ENOMEM;
  }
}

int hand_over_successor(int control, int ready, const std::vector<int>& sockets) noexcept {
  try {
    std::vector<int> fds{control, ready};
    fds.insert(fds.end(), sockets.begin(), sockets.end());
    return send_on_channel(kUpgradeMessage, fds);
  } catch (const std::bad_alloc&) {
    return ENOMEM;
  }
}

}  // namespace salam::daemon::exec
