// Built with SALAM_TEST_HOOKS (every preset; docs/testing.md): once
// confined, salam tries what SALAM_TEST_PROBE names, from inside, so that
// tests can see the confinement refuse it.
//   syscall     ptrace(): not allowed, the filter kills the process (SIGSYS)
//   io_uring    io_uring_setup(): refused with EPERM, logged
//   open:PATH   open PATH for reading: refused by Landlock (EACCES), logged
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include <fcntl.h>
#include <linux/io_uring.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <salam/log.hpp>

#include "sandbox/sandbox.hpp"

namespace salam::daemon {

namespace {

void report(std::string_view what, long result) {
  log::warning("test probe: {}: {}", what, result < 0 ? std::strerror(errno) : "succeeded");
  log::flush_thread_buffer();
}

}  // namespace

void run_test_probe() noexcept {
  const char* value = std::getenv("SALAM_TEST_PROBE");
  if (value == nullptr) return;
  const std::string_view probe(value);
  if (probe == "syscall") {
    log::warning("test probe: ptrace");
    log::flush_thread_buffer();
    report("ptrace", ::syscall(SYS_ptrace, PTRACE_TRACEME, 0, nullptr, nullptr));
  } else if (probe == "io_uring") {
    io_uring_params params{};
    const long ring = ::syscall(SYS_io_uring_setup, 8, &params);
    report("io_uring_setup", ring);
    if (ring >= 0) ::close(static_cast<int>(ring));
  } else if (probe.starts_with("open:")) {
    const std::string path(probe.substr(5));
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    report("open " + path, fd);
    if (fd >= 0) ::close(fd);
  } else {
    log::warning("test probe: unknown probe '{}'", probe);
  }
}

}  // namespace salam::daemon
