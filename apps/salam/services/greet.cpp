// greet: the tutorial's protocol. Read once (at most --read-size bytes,
// whatever arrives first), reply with the message, close. A client that
// closes without sending gets the same treatment as in the tutorial: its
// empty read is answered. With --greet-first the reply goes out at once,
// without waiting for input (a banner).
#include "service.hpp"

namespace salam::daemon {

Task<CloseReason> serve_greet(Connection& client, const ServiceOptions& options) {
  if (!options.greet_first) {
    auto request = co_await client.read(options.read_size, options.read_timeout);
    if (!request) co_return reason_for(request.error(), CloseReason::timeout_first_byte);
  }
  co_return co_await reply_and_close(client, options.message, options.idle_timeout);
}

}  // namespace salam::daemon
