#include "listen_socket.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <system_error>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <salam/printable.hpp>

namespace salam::detail {

namespace {

// The message reads "cannot listen on ADDRESS: STEP: <errno text>"; the
// errno text is appended by std::system_error.
[[noreturn]] void fail(int error, const ListenAddress& address, std::string_view step) {
  std::string what = "cannot listen on " + address.to_string();
  if (!step.empty()) what += ": " + std::string(step);
  throw std::system_error(error, std::generic_category(), what);
}

void set_option(int fd, int level, int name, int value, const ListenAddress& address,
                std::string_view what) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0) fail(errno, address, what);
}

// A Unix socket path left behind by a process that is gone can be
// replaced; one that somebody still listens on cannot. The probe does not
// block: a listener whose queue is full (EAGAIN) is still somebody's.
void remove_stale_unix_socket(const std::string& path) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0 || !S_ISSOCK(info.st_mode)) return;
  FileDescriptor probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  if (::connect(probe.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 &&
      errno == ECONNREFUSED) {
    ::unlink(path.c_str());
  }
}

}  // namespace

ListenAddress ListenAddress::parse(std::string_view text) {
  ListenAddress result;
  if (text.starts_with("unix:")) {
    result.unix_path = std::string(text.substr(5));
    if (result.unix_path.empty()) {
      throw std::invalid_argument("bad address '" + printable(text) +
                                  "': missing path after unix:");
    }
    if (result.unix_path.size() >= sizeof(sockaddr_un::sun_path)) {
      throw std::invalid_argument("bad address '" + printable(text) +
                                  "': Unix socket path longer than 107 bytes");
    }
    return result;
  }
  result.ip = SocketAddress::parse(text);
  return result;
}

std::string ListenAddress::to_string() const {
  return ip ? ip->to_string() : "unix:" + unix_path;
}

int effective_backlog(int wanted, bool& clamped) {
  clamped = false;
  int limit = 4096;
  std::ifstream file("/proc/sys/net/core/somaxconn");
  if (!(file >> limit) || limit <= 0) limit = 4096;
  if (wanted > limit) {
    clamped = true;
    return limit;
  }
  return wanted < 1 ? 1 : wanted;
}

void check_address_free(const ListenAddress& address, const ListenOptions& options) {
  if (!address.ip || address.ip->port() == 0) return;
  // A socket without SO_REUSEPORT cannot bind where anything listens, an
  // SO_REUSEPORT group of the same user included; binding one, and
  // closing it at once, tells whether the address is free.
  FileDescriptor probe(::socket(address.ip->family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe) fail(errno, address, "socket");
  set_option(probe.get(), SOL_SOCKET, SO_REUSEADDR, 1, address, "SO_REUSEADDR");
  if (address.ip->family() == AF_INET6) {
    set_option(probe.get(), IPPROTO_IPV6, IPV6_V6ONLY, options.v6_only ? 1 : 0, address,
               "IPV6_V6ONLY");
  }
  if (::bind(probe.get(), address.ip->data(), address.ip->size()) != 0) fail(errno, address, {});
}

FileDescriptor open_listen_socket(const ListenAddress& address, const ListenOptions& options,
                                  bool reuse_port) {
  const int family = address.ip ? address.ip->family() : AF_UNIX;
  FileDescriptor socket(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!socket) fail(errno, address, "socket");
  const int fd = socket.get();

  if (address.ip) {
    set_option(fd, SOL_SOCKET, SO_REUSEADDR, 1, address, "SO_REUSEADDR");
    if (reuse_port) set_option(fd, SOL_SOCKET, SO_REUSEPORT, 1, address, "SO_REUSEPORT");
    if (family == AF_INET6) {
      set_option(fd, IPPROTO_IPV6, IPV6_V6ONLY, options.v6_only ? 1 : 0, address, "IPV6_V6ONLY");
    }
    if (options.defer_accept_seconds > 0) {
      set_option(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, options.defer_accept_seconds, address,
                 "TCP_DEFER_ACCEPT");
    }
    // Accepted sockets inherit TCP_NODELAY from the listener on Linux, which
    // saves a setsockopt per connection.
    if (options.no_delay) set_option(fd, IPPROTO_TCP, TCP_NODELAY, 1, address, "TCP_NODELAY");
    if (options.send_buffer > 0) {
      set_option(fd, SOL_SOCKET, SO_SNDBUF, options.send_buffer, address, "SO_SNDBUF");
    }
    if (::bind(fd, address.ip->data(), address.ip->size()) != 0) {
      fail(errno, address, {});
    }
  } else {
    remove_stale_unix_socket(address.unix_path);
    sockaddr_un unix_address{};
    unix_address.sun_family = AF_UNIX;
    std::memcpy(unix_address.sun_path, address.unix_path.c_str(), address.unix_path.size() + 1);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&unix_address), sizeof unix_address) != 0) {
      fail(errno, address, {});
    }
  }

  if (::listen(fd, options.backlog) != 0) fail(errno, address, {});
  return socket;
}

}  // namespace salam::detail

namespace salam::detail {

FileDescriptor adopt_listen_socket(int fd) {
  FileDescriptor socket(fd);
  int type = 0;
  int listening = 0;
  socklen_t length = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0) {
    throw std::system_error(errno, std::generic_category(),
                            "inherited descriptor " + std::to_string(fd) + " is not a socket");
  }
  length = sizeof listening;
  if (type != SOCK_STREAM ||
      ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 || listening == 0) {
    throw std::system_error(
        EINVAL, std::generic_category(),
        "inherited descriptor " + std::to_string(fd) + " is not a listening stream socket");
  }
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
      ::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
    throw std::system_error(errno, std::generic_category(),
                            "cannot set up inherited descriptor " + std::to_string(fd));
  }
  return socket;
}

}  // namespace salam::detail
