#include <array>

#include "service.hpp"

namespace salam::daemon {

namespace {

constexpr std::array kServices = {
    ServiceInfo{"greet", "read the client's message, reply with --message, close (the default)",
                &serve_greet},
    ServiceInfo{"echo", "send back whatever arrives (RFC 862)", &serve_echo},
    ServiceInfo{"discard", "read and throw away whatever arrives (RFC 863)", &serve_discard},
    ServiceInfo{"chargen", "send lines of characters until the client closes (RFC 864)",
                &serve_chargen},
    ServiceInfo{"daytime", "send the date and time as text, close (RFC 867)", &serve_daytime},
    ServiceInfo{"time", "send seconds since 1900 as 32 bits, close (RFC 868)", &serve_time},
    ServiceInfo{"qotd", "send a quote of the day, close (RFC 865)", &serve_qotd},
    ServiceInfo{"exec", "run a program per connection, as tcpserver does (the program after --)",
                &serve_exec},
};

}  // namespace

std::span<const ServiceInfo> all_services() noexcept {
  return kServices;
}

const ServiceInfo* find_service(std::string_view name) noexcept {
  for (const auto& service : kServices) {
    if (service.name == name) return &service;
  }
  return nullptr;
}

Task<Ending> send_reply(Connection& client, std::string_view reply, Duration timeout) {
  if (auto error = co_await client.write_all(reply, timeout)) {
    co_return ending_for(error, CloseReason::timeout_write);
  }
  co_return CloseReason::done;
}

}  // namespace salam::daemon
