// Services: what the daemon does with a connection once it is accepted.
//
// A service is a coroutine that serves one connection and says why it
// ended. It never closes the connection: the session does, and the engine
// lingers where input is left unread (see Connection::close), so that
// every service ends the same way.
// Each service is one file in this directory; registry.cpp lists them.
#pragma once

#include <optional>
#include <span>
#include <string_view>
#include <system_error>

#include <salam/address.hpp>
#include <salam/connection.hpp>
#include <salam/task.hpp>
#include <salam/tls.hpp>

#include "../close_reason.hpp"
#include "../config.hpp"

namespace salam::daemon {

// What the session learnt of a connection before its service: for the
// services that pass it on (exec's environment) or name it in the log.
// The addresses are asked for only by who uses them: on io_uring the
// peer's costs a system call.
struct SessionFacts {
  const SocketAddress* proxied = nullptr;  // the client a PROXY header named, if any
  const tls::SessionInfo* tls = nullptr;   // on a TLS listener, what the handshake established
  std::string_view listener;               // its address (unix:/path on a Unix socket)
  bool is_unix = false;

  // The PROXY header's client, else the TCP peer; none on a Unix socket.
  std::optional<SocketAddress> client(const Connection& connection) const {
    if (proxied != nullptr) return *proxied;
    if (is_unix) return std::nullopt;
    return connection.peer();
  }
  // The TCP peer, when a PROXY header named the client: the balancer.
  std::optional<SocketAddress> balancer(const Connection& connection) const {
    if (proxied == nullptr || is_unix) return std::nullopt;
    return connection.peer();
  }
};

// The connection and the facts are owned by the caller, which awaits the
// service at once, so references are safe here.
using ServeFunction = Task<Ending> (*)(Connection& client, const ServiceOptions& options,
                                       const SessionFacts& facts);

struct ServiceInfo {
  std::string_view name;
  std::string_view summary;  // one line, for --help
  ServeFunction serve;
};

std::span<const ServiceInfo> all_services() noexcept;
const ServiceInfo* find_service(std::string_view name) noexcept;

Task<Ending> serve_greet(Connection& client, const ServiceOptions& options,
                         const SessionFacts& facts);
Task<Ending> serve_echo(Connection& client, const ServiceOptions& options,
                        const SessionFacts& facts);
Task<Ending> serve_discard(Connection& client, const ServiceOptions& options,
                           const SessionFacts& facts);
Task<Ending> serve_chargen(Connection& client, const ServiceOptions& options,
                           const SessionFacts& facts);
Task<Ending> serve_daytime(Connection& client, const ServiceOptions& options,
                           const SessionFacts& facts);
Task<Ending> serve_time(Connection& client, const ServiceOptions& options,
                        const SessionFacts& facts);
Task<Ending> serve_qotd(Connection& client, const ServiceOptions& options,
                        const SessionFacts& facts);
Task<Ending> serve_exec(Connection& client, const ServiceOptions& options,
                        const SessionFacts& facts);

// Sends `reply`: the common end of the one-shot services.
Task<Ending> send_reply(Connection& client, std::string_view reply, Duration timeout);

}  // namespace salam::daemon
