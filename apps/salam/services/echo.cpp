// echo (RFC 862): send back what arrives until the client closes its side.
// Each read is written back before the next read starts, so a client that
// does not read its echoes stops being read: memory stays at one buffer
// per connection whatever the client does. When the loop's receive
// buffers run short (many clients that do not read), that one buffer is
// moved out of the pool, so slow readers cannot starve other connections'
// reads.
#include "service.hpp"

namespace salam::daemon {

Task<CloseReason> serve_echo(Connection& client, const ServiceOptions& options) {
  for (;;) {
    auto input = co_await client.read(64 * 1024, options.idle_timeout);
    if (!input) co_return reason_for(input.error(), CloseReason::timeout_idle);
    if (input->empty()) break;
    if (client.loop().buffers_scarce()) input->detach();
    if (auto error = co_await client.write_all(input->bytes(), options.idle_timeout)) {
      co_return reason_for(error, CloseReason::timeout_idle);
    }
  }
  co_await client.close_gracefully();
  co_return CloseReason::done;
}

}  // namespace salam::daemon
