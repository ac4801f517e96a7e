// Whether this kernel can take over TLS records (kTLS). salam does not
// hand records to the kernel yet; the daemon says at start which it is.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <salam/tls.hpp>

namespace salam::tls {

bool kernel_tls_available() noexcept {
  // The "tls" upper layer protocol attaches only to a connected TCP socket
  // and needs the kernel's tls module: try it on a loopback pair.
  static const bool available = [] {
    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok = false;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (listener >= 0 && client >= 0 &&
        ::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
        ::listen(listener, 1) == 0 &&
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) == 0 &&
        ::connect(client, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
      ok = ::setsockopt(client, SOL_TCP, TCP_ULP, "tls", sizeof "tls") == 0;
    }
    if (client >= 0) ::close(client);
    if (listener >= 0) ::close(listener);
    return ok;
  }();
  return available;
}

}  // namespace salam::tls
