// Socket activation: the listening sockets systemd passed (LISTEN_FDS,
// LISTEN_PID, LISTEN_FDNAMES; a .socket unit, or systemd-socket-activate),
// or the process this one replaces (upgrade.hpp), by the same protocol.
//
// Each is matched to a configured listener by its name (a listener's
// `name`, systemd's FileDescriptorName=) or else by the address it listens
// on, and that listener uses it as it is (never re-binding it: the address may
// need privileges salam does not have). Sockets no listener wants are
// closed with a warning; listeners no socket matches bind as usual. The
// environment variables are unset when the sockets are taken, so that no
// child inherits them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace salam::daemon {

class InheritedSockets {
 public:
  // What systemd passed to this process, if anything.
  static InheritedSockets take();
  InheritedSockets() = default;
  InheritedSockets(InheritedSockets&& other) noexcept : sockets_(std::move(other.sockets_)) {}
  InheritedSockets& operator=(InheritedSockets&&) = delete;
  ~InheritedSockets() { close_unclaimed(); }

  // The descriptors listening on `address` (in the configuration's
  // spelling: 127.0.0.1:80, [::]:443, unix:/run/x.sock), now the caller's:
  // one from systemd, or an SO_REUSEPORT group from an upgrade; none if no
  // socket listens there.
  std::vector<int> claim(std::string_view address);
  // The descriptors named `name` (FileDescriptorName=), wherever they
  // listen; `address` gets where that is. None if no socket has the name.
  std::vector<int> claim_named(std::string_view name, std::string& address);
  // Closes the sockets nobody claimed, with a warning for each.
  void close_unclaimed() noexcept;

 private:
  struct Socket {
    std::string address;
    std::string name;  // FileDescriptorName=, for the warning
    int fd;
  };
  std::vector<Socket> sockets_;
};

}  // namespace salam::daemon
