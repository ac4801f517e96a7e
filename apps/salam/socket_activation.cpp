#include "socket_activation.hpp"

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <utility>

#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <salam/address.hpp>
#include <salam/log.hpp>

namespace salam::daemon {

namespace {

// Where `fd` listens, spelled as the configuration spells it; empty if it
// is no socket salam can serve.
std::string address_of(int fd) {
  sockaddr_storage raw{};
  socklen_t length = sizeof raw;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&raw), &length) != 0) return {};
  if (raw.ss_family == AF_UNIX) {
    const auto* path = reinterpret_cast<const sockaddr_un*>(&raw);
    if (length <= offsetof(sockaddr_un, sun_path) || path->sun_path[0] == '\0') return {};
    return std::string("unix:") + path->sun_path;
  }
  auto address = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&raw), length);
  return address ? address->to_string() : std::string();
}

}  // namespace

InheritedSockets InheritedSockets::take() {
  InheritedSockets taken;
  char** names = nullptr;
  // 1: unset LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES.
  const int count = sd_listen_fds_with_names(1, &names);
  if (count < 0) {
    log::warning("cannot take the sockets systemd passed: {}", std::strerror(-count));
    return taken;
  }
  for (int i = 0; i < count; ++i) {
    const int fd = SD_LISTEN_FDS_START + i;
    std::string name = names != nullptr && names[i] != nullptr ? names[i] : "";
    if (name == "unknown") name.clear();  // what sd_listen_fds_with_names says for no name
    taken.sockets_.push_back(Socket{address_of(fd), std::move(name), fd});
  }
  if (names != nullptr) {
    for (int i = 0; i < count; ++i)
      std::free(names[i]);
    std::free(names);
  }
  return taken;
}

std::vector<int> InheritedSockets::claim(std::string_view address) {
  std::vector<int> claimed;
  for (auto& socket : sockets_) {
    if (socket.fd >= 0 && !socket.address.empty() && socket.address == address) {
      claimed.push_back(std::exchange(socket.fd, -1));
    }
  }
  if (claimed.size() == 1) {
    log::info("{}: using the listening socket passed as descriptor {}", address, claimed[0]);
  } else if (!claimed.empty()) {
    log::info("{}: using the {} listening sockets passed as descriptors {} to {}", address,
              claimed.size(), claimed.front(), claimed.back());
  }
  return claimed;
}

std::vector<int> InheritedSockets::claim_named(std::string_view name, std::string& address) {
  std::vector<int> claimed;
  for (auto& socket : sockets_) {
    if (socket.fd >= 0 && socket.name == name && !socket.address.empty()) {
      if (claimed.empty()) address = socket.address;
      if (socket.address == address) claimed.push_back(std::exchange(socket.fd, -1));
    }
  }
  if (!claimed.empty()) {
    log::info("{}: using the {} listening socket(s) named {} (descriptor {})", address,
              claimed.size(), name, claimed.front());
  }
  return claimed;
}

void InheritedSockets::close_unclaimed() noexcept {
  for (auto& socket : sockets_) {
    if (socket.fd < 0) continue;
    log::warning(
        "closing the socket passed as descriptor {}{}{}: no listener is "
        "configured for {}",
        socket.fd, socket.name.empty() ? "" : " named ", socket.name,
        socket.address.empty() ? "its address" : socket.address);
    ::close(std::exchange(socket.fd, -1));
  }
}

}  // namespace salam::daemon
