// Opening listening sockets: address parsing, socket options, backlog.
#pragma once

#include <optional>
#include <string>

#include <salam/address.hpp>
#include <salam/server.hpp>
#include <salam/socket.hpp>

namespace salam::detail {

// Where a listener listens: an IP address or a Unix socket path.
struct ListenAddress {
  std::optional<SocketAddress> ip;
  std::string unix_path;

  // Parses `ADDRESS:PORT` or `unix:/path`; throws std::invalid_argument.
  static ListenAddress parse(std::string_view text);
  std::string to_string() const;
};

// The backlog to pass to listen(2): `wanted`, clamped to somaxconn.
// Sets `clamped` when it had to clamp.
int effective_backlog(int wanted, bool& clamped);

// Throws std::system_error (EADDRINUSE) if something listens on the
// address already. An SO_REUSEPORT socket would join another process's
// group there without a word; this keeps "address in use" meaningful.
void check_address_free(const ListenAddress& address, const ListenOptions& options);

// Opens, configures, binds and listens with options.backlog as given (see
// effective_backlog); non-blocking and close-on-exec.
// `reuse_port` joins an SO_REUSEPORT group. Throws std::system_error with
// a message naming the address.
FileDescriptor open_listen_socket(const ListenAddress& address, const ListenOptions& options,
                                  bool reuse_port);

// Takes a listening socket the program was given: checks that it is a
// listening stream socket and makes it non-blocking and close-on-exec.
// Throws std::system_error (EINVAL for a socket of the wrong kind).
FileDescriptor adopt_listen_socket(int fd);

}  // namespace salam::detail
