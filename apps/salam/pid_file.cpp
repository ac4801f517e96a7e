#include "pid_file.hpp"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <salam/printable.hpp>

#include "config.hpp"

namespace salam::daemon {

namespace {

[[noreturn]] void fail(const std::string& path, int error) {
  throw ConfigError("", fmt::format("cannot write the pid file '{}': {}", printable(path, 256),
                                    std::strerror(error)));
}

}  // namespace

void PidFile::write(const std::string& path) {
  const std::string text = fmt::format("{}\n", ::getpid());
  const std::string temporary = fmt::format("{}.{}.tmp", path, ::getpid());
  const int fd =
      ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, errno);
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                       ::fsync(fd) == 0;
  const int error = errno;
  ::close(fd);
  if (!written || ::rename(temporary.c_str(), path.c_str()) != 0) {
    const int why = written ? errno : error;
    ::unlink(temporary.c_str());
    fail(path, why);
  }
  path_ = path;
}

void PidFile::remove() noexcept {
  if (path_.empty()) return;
  char text[32] = {};
  const int fd = ::open(path_.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd >= 0) {
    const ssize_t length = ::read(fd, text, sizeof text - 1);
    ::close(fd);
    if (length > 0 && fmt::format("{}\n", ::getpid()) == std::string(text, length)) {
      ::unlink(path_.c_str());
    }
  }
  path_.clear();
}

}  // namespace salam::daemon
