#include "launch.hpp"

#include <cerrno>
#include <csignal>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace salam::daemon::exec {

namespace {

constexpr std::size_t kStackSize = 256 * 1024;

struct Launch {
  const Request* request;
  char* const* argv;
  char* const* envp;
  const gid_t* groups;
  const sock_fprog* filter;
  int stdio;
  int errors;
  int error;  // set by the child if it fails before the exec
};

constexpr int resource_of(Limit limit) {
  switch (limit) {
    case Limit::address_space:
      return RLIMIT_AS;
    case Limit::processes:
      return RLIMIT_NPROC;
    case Limit::files:
      return RLIMIT_NOFILE;
    case Limit::cpu_seconds:
      return RLIMIT_CPU;
  }
  return RLIMIT_AS;
}

// Runs in the child, on its own stack but in the spawner's memory: only
// system calls, no allocation, no locks. Identity changes go straight to
// the kernel (glibc's wrappers would try to change every thread of the
// process they think they are in).
[[noreturn]] void fail(Launch& launch) {
  launch.error = errno;
  ::_exit(127);
}

int child_main(void* argument) {
  Launch& launch = *static_cast<Launch*>(argument);
  const Request& request = *launch.request;
  if (::dup2(launch.stdio, 0) < 0 || ::dup2(launch.stdio, 1) < 0 || ::dup2(launch.errors, 2) < 0) {
    fail(launch);
  }
  if (::syscall(SYS_close_range, 3U, ~0U, 0U) != 0) fail(launch);
  if (::setsid() < 0) fail(launch);
  for (std::size_t i = 0; i < kLimits; ++i) {
    if (!request.limits[i]) continue;
    const rlimit limit{*request.limits[i], *request.limits[i]};
    if (::setrlimit(resource_of(static_cast<Limit>(i)), &limit) != 0) fail(launch);
  }
  // The spawner may hold CAP_NET_BIND_SERVICE for an upgrade's successor
  // (ambient, so that it survives an exec): a program must not.
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    fail(launch);
  }
  // A spawner that is not root can only be the identity asked for already
  // (it dropped to salam's --user); asking for another fails with EPERM.
  const bool root = ::geteuid() == 0;
  if (request.uid && root && ::syscall(SYS_setgroups, request.groups.size(), launch.groups) != 0) {
    fail(launch);
  }
  if (request.gid && (root || ::getegid() != *request.gid) &&
      ::syscall(SYS_setresgid, *request.gid, *request.gid, *request.gid) != 0) {
    fail(launch);
  }
  if (request.uid && (root || ::geteuid() != *request.uid) &&
      ::syscall(SYS_setresuid, *request.uid, *request.uid, *request.uid) != 0) {
    fail(launch);
  }
  if (launch.filter != nullptr) {
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail(launch);
    if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0U, launch.filter) != 0) fail(launch);
  }
  // The spawner keeps every disposition at its default (see spawner.cpp),
  // so only the mask needs resetting.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve(request.path.c_str(), launch.argv, launch.envp);
  fail(launch);
}

std::vector<char*> pointers_to(const std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  pointers.reserve(strings.size() + 1);
  for (const auto& text : strings)
    pointers.push_back(const_cast<char*>(text.c_str()));
  pointers.push_back(nullptr);
  return pointers;
}

// One stack, reused: CLONE_VFORK suspends the spawner until the child has
// executed or exited, so two children never run on it at once.
void* stack_top() {
  static void* stack = [] {
    void* memory = ::mmap(nullptr, kStackSize, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    return memory == MAP_FAILED ? nullptr : memory;
  }();
  return stack == nullptr ? nullptr : static_cast<char*>(stack) + kStackSize;
}

}  // namespace

pid_t launch(const Request& request, int stdio, int errors, const sock_fprog* filter) noexcept {
  void* top = stack_top();
  if (top == nullptr) return -ENOMEM;
  try {
    const std::vector<char*> argv = pointers_to(request.argv);
    const std::vector<char*> envp = pointers_to(request.env);
    const std::vector<gid_t> groups(request.groups.begin(), request.groups.end());
    Launch job{&request, argv.data(), envp.data(), groups.data(), filter, stdio, errors, 0};
    const pid_t pid = ::clone(child_main, top, CLONE_VM | CLONE_VFORK | SIGCHLD, &job);
    if (pid < 0) return -errno;
    if (job.error != 0) {
      ::waitpid(pid, nullptr, 0);  // it has exited already: this does not wait
      return -job.error;
    }
    return pid;
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
}

namespace {

struct Handover {
  const char* path;
  char* const* argv;
  char* const* envp;
  char* pid_slot;          // in envp: LISTEN_PID's value
  const int* descriptors;  // the sockets, then the ready pipe
  int* moved;              // room for as many
  int count;               // of descriptors
  int error;
};

int successor_main(void* argument) {
  Handover& handover = *static_cast<Handover*>(argument);
  // First out of the way of 3, 4, ..., where they must go.
  const int high = Upgrade::kFirstSocket + handover.count;
  for (int i = 0; i < handover.count; ++i) {
    handover.moved[i] = ::fcntl(handover.descriptors[i], F_DUPFD, high);
    if (handover.moved[i] < 0) {
      handover.error = errno;
      ::_exit(126);
    }
  }
  for (int i = 0; i < handover.count; ++i) {
    if (::dup2(handover.moved[i], Upgrade::kFirstSocket + i) < 0) {
      handover.error = errno;
      ::_exit(126);
    }
  }
  ::syscall(SYS_close_range, static_cast<unsigned>(high), ~0U, 0U);
  char digits[20];
  int length = 0;
  for (pid_t pid = ::getpid(); pid > 0 && length < 20; pid /= 10)
    digits[length++] = static_cast<char>('0' + pid % 10);
  for (int i = 0; i < length; ++i)
    handover.pid_slot[i] = digits[length - 1 - i];
  handover.pid_slot[length] = '\0';
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve(handover.path, handover.argv, handover.envp);
  handover.error = errno;
  ::_exit(127);
}

}  // namespace

pid_t launch_successor(const Upgrade::Successor& successor, const std::vector<int>& sockets,
                       int ready) noexcept {
  void* top = stack_top();
  if (top == nullptr) return -ENOMEM;
  try {
    std::vector<std::string> environment = successor.environment;
    for (auto& variable : Upgrade::handover_variables(static_cast<int>(sockets.size())))
      environment.push_back(std::move(variable));
    const std::vector<char*> argv = pointers_to(successor.arguments);
    std::vector<char*> envp = pointers_to(environment);
    char* pid_slot = environment.back().data() + std::string_view("LISTEN_PID=").size();
    std::vector<int> descriptors = sockets;
    descriptors.push_back(ready);
    std::vector<int> moved(descriptors.size(), -1);
    Handover handover{successor.path.c_str(),
                      argv.data(),
                      envp.data(),
                      pid_slot,
                      descriptors.data(),
                      moved.data(),
                      static_cast<int>(descriptors.size()),
                      0};
    const pid_t pid = ::clone(successor_main, top, CLONE_VM | CLONE_VFORK | SIGCHLD, &handover);
    if (pid < 0) return -errno;
    if (handover.error != 0) {
      ::waitpid(pid, nullptr, 0);  // it has exited already
      return -handover.error;
    }
    return pid;
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
}

}  // namespace salam::daemon::exec
