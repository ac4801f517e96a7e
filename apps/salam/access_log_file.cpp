#include "access_log_file.hpp"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <salam/log.hpp>
#include <salam/printable.hpp>

namespace salam::daemon {

namespace {

// Why an open descriptor cannot take the access records, or "".
std::string unusable(int fd) {
  struct stat info {};
  struct statfs where {};
  if (::fstat(fd, &info) != 0 || ::fstatfs(fd, &where) != 0) return std::strerror(errno);
  if (S_ISFIFO(info.st_mode) || S_ISSOCK(info.st_mode) || S_ISCHR(info.st_mode)) return {};
  if (!S_ISREG(info.st_mode)) return "not a regular file";
  if (where.f_type == PROC_SUPER_MAGIC || where.f_type == SYSFS_MAGIC) {
    return "a file of /proc or /sys, not a log file";
  }
  return {};
}

}  // namespace

AccessLogFile::~AccessLogFile() {
  // The shards are gone by now; flush this thread's lines and let go.
  log::set_access_fd(-1);
  if (fd_ >= 0) ::close(fd_);
}

std::string AccessLogFile::open(const std::string& path) {
  if (path.empty()) {
    // Shards may still hold the number for a moment: keep the file open
    // (it is one descriptor) rather than risk a write to a reused number.
    log::set_access_fd(-1);
    return {};
  }
  const std::string name = "access log '" + printable(path, 256) + "'";
  // Non-blocking, so that a FIFO without a reader fails (ENXIO) rather
  // than blocks; writes then block as they always did.
  const int fresh =
      ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0640);
  if (fresh < 0) return "cannot open " + name + ": " + std::strerror(errno);
  if (std::string why = unusable(fresh); !why.empty()) {
    ::close(fresh);
    return "cannot use " + name + ": " + why;
  }
  ::fcntl(fresh, F_SETFL, ::fcntl(fresh, F_GETFL) & ~O_NONBLOCK);
  if (fd_ < 0) {
    fd_ = fresh;
  } else {
    if (::dup3(fresh, fd_, O_CLOEXEC) < 0) {
      std::string error = "cannot reopen " + name + ": " + std::strerror(errno);
      ::close(fresh);
      return error;
    }
    ::close(fresh);
  }
  log::set_access_fd(fd_);
  return {};
}

}  // namespace salam::daemon
