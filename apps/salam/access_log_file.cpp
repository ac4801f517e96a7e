#include "access_log_file.hpp"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

#include <salam/log.hpp>

namespace salam::daemon {

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
  const int fresh = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fresh < 0) return "cannot open access log '" + path + "': " + std::strerror(errno);
  if (fd_ < 0) {
    fd_ = fresh;
  } else {
    if (::dup3(fresh, fd_, O_CLOEXEC) < 0) {
      std::string error = "cannot reopen access log '" + path + "': " + std::strerror(errno);
      ::close(fresh);
      return error;
    }
    ::close(fresh);
  }
  log::set_access_fd(fd_);
  return {};
}

}  // namespace salam::daemon
