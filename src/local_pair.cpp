#include <cerrno>

#include <fcntl.h>
#include <sys/socket.h>

#include <salam/connection.hpp>

#include "engine.hpp"

namespace salam {

Result<LocalPair> local_pair(Loop& loop, int type) noexcept {
  int fds[2];
  if (::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds) != 0) return errno_code(errno);
  FileDescriptor here(fds[0]);
  FileDescriptor there(fds[1]);
  // The loop's end gets the flags its backend wants (epoll: non-blocking);
  // the other end stays blocking, as a child process expects of its stdio.
  if ((detail::Engine::socket_flags(loop) & SOCK_NONBLOCK) != 0 &&
      ::fcntl(here.get(), F_SETFL, ::fcntl(here.get(), F_GETFL) | O_NONBLOCK) != 0) {
    return errno_code(errno);
  }
  // A local socket has no address worth asking the kernel for.
  return LocalPair{Connection(loop, std::move(here), SocketAddress()), std::move(there)};
}

}  // namespace salam
