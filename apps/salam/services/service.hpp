// Services: what the daemon does with a connection once it is accepted.
//
// A service is a coroutine that serves one connection and says why it
// ended. It never closes the connection: the session does, and the engine
// lingers where input is left unread (see Connection::close), so that
// every service ends the same way.
// Each service is one file in this directory; registry.cpp lists them.
#pragma once

#include <span>
#include <string_view>
#include <system_error>

#include <salam/connection.hpp>
#include <salam/task.hpp>

#include "../close_reason.hpp"
#include "../config.hpp"

namespace salam::daemon {

// The connection is owned by the caller, which awaits the service at once,
// so a reference is safe here.
using ServeFunction = Task<Ending> (*)(Connection& client, const ServiceOptions& options);

struct ServiceInfo {
  std::string_view name;
  std::string_view summary;  // one line, for --help
  ServeFunction serve;
};

std::span<const ServiceInfo> all_services() noexcept;
const ServiceInfo* find_service(std::string_view name) noexcept;

Task<Ending> serve_greet(Connection& client, const ServiceOptions& options);
Task<Ending> serve_echo(Connection& client, const ServiceOptions& options);
Task<Ending> serve_discard(Connection& client, const ServiceOptions& options);
Task<Ending> serve_chargen(Connection& client, const ServiceOptions& options);
Task<Ending> serve_daytime(Connection& client, const ServiceOptions& options);
Task<Ending> serve_time(Connection& client, const ServiceOptions& options);
Task<Ending> serve_qotd(Connection& client, const ServiceOptions& options);

// Sends `reply`: the common end of the one-shot services.
Task<Ending> send_reply(Connection& client, std::string_view reply, Duration timeout);

}  // namespace salam::daemon
