// echo (RFC 862): send back what arrives until the client closes its side.
// Each read is written back before the next read starts, so a client that
// does not read its echoes stops being read: memory stays at one buffer
// per connection whatever the client does. (When the loop's receive
// buffers run short, the engine moves bytes a handler holds out of the
// pool, so clients that do not read cannot starve other connections.)
#include "service.hpp"

namespace salam::daemon {

Task<Ending> serve_echo(Connection& client, const ServiceOptions& options,
                        const SessionFacts& /*facts*/) {
  for (;;) {
    auto input = co_await client.read(64 * 1024, options.idle_timeout);
    if (!input) co_return ending_for(input.error(), CloseReason::timeout_idle);
    if (input->empty()) break;
    if (auto error = co_await client.write_all(input->bytes(), options.write_timeout)) {
      co_return ending_for(error, CloseReason::timeout_write);
    }
  }
  co_return CloseReason::done;
}

}  // namespace salam::daemon
