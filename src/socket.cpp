#include <unistd.h>

#include <salam/socket.hpp>

namespace salam {

void FileDescriptor::reset(int fd) noexcept {
  // close(2) releases the descriptor even when it reports EINTR; never retry.
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

}  // namespace salam
