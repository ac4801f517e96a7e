#include "input_file.hpp"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <salam/printable.hpp>
#include <salam/socket.hpp>

#include "config.hpp"

namespace salam::daemon {

namespace {

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "is a directory";
  if (S_ISFIFO(mode)) return "is a FIFO, not a regular file";
  if (S_ISSOCK(mode)) return "is a socket, not a regular file";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "is a device, not a regular file";
  return "is not a regular file";
}

std::string size_text(std::size_t bytes) {
  if (bytes % (1 << 20) == 0) return fmt::format("{} MiB", bytes >> 20);
  return fmt::format("{} bytes", bytes);
}

}  // namespace

std::optional<std::string> read_input_file(const std::string& path, std::size_t limit,
                                           std::string& why) {
  // Looked at before it is opened, so that no device is ever opened (an
  // open can have effects of its own); checked again on the descriptor, in
  // case the path changed in between.
  const auto fail = [&why](std::string reason) -> std::optional<std::string> {
    why = std::move(reason);
    return std::nullopt;
  };
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return fail(std::strerror(errno));
  if (!S_ISREG(info.st_mode)) return fail(kind_of(info.st_mode));
  FileDescriptor file(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!file || ::fstat(file.get(), &info) != 0) return fail(std::strerror(errno));
  if (!S_ISREG(info.st_mode)) return fail(kind_of(info.st_mode));
  const auto too_large = [&] { return fail("larger than " + size_text(limit)); };
  if (static_cast<std::size_t>(info.st_size) > limit) return too_large();

  // The size is a hint (files in /proc say 0; a file may grow): read until
  // the end, or one byte past the limit.
  std::string text;
  text.resize(std::min<std::size_t>(static_cast<std::size_t>(info.st_size), limit) + 1);
  std::size_t used = 0;
  for (;;) {
    if (used == text.size()) {
      if (used > limit) return too_large();
      text.resize(std::min(text.size() * 2 + 4096, limit + 1));
    }
    const ssize_t n = ::read(file.get(), text.data() + used, text.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(std::strerror(errno));
    if (n == 0) break;
    used += static_cast<std::size_t>(n);
  }
  if (used > limit) return too_large();
  text.resize(used);
  return text;
}

std::string read_input_file_or_throw(const std::string& path, std::size_t limit,
                                     std::string_view what, std::string_view where) {
  std::string why;
  auto text = read_input_file(path, limit, why);
  if (!text) {
    throw ConfigError(where,
                      fmt::format("cannot read {} '{}': {}", what, printable(path, 256), why));
  }
  return std::move(*text);
}

}  // namespace salam::daemon
