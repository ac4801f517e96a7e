// greet: the tutorial's protocol. Read once (at most --read-size bytes,
// whatever arrives first), reply with the message, close. A client that
// closes without sending gets the same treatment as in the tutorial: its
// empty read is answered. With --greet-first the reply goes out at once,
// without waiting for input (a banner).
#include "service.hpp"

namespace salam::daemon {

Task<Ending> serve_greet(Connection& client, const ServiceOptions& options,
                         const SessionFacts& /*facts*/) {
  if (!options.greet_first) {
    auto request = co_await client.read(options.read_size, options.read_timeout);
    if (!request) co_return ending_for(request.error(), CloseReason::timeout_first_byte);
  }
  // The reply is written here rather than through send_reply(): one
  // coroutine frame fewer on the path every greeting takes.
  if (auto error = co_await client.write_all(options.message, options.write_timeout)) {
    co_return ending_for(error, CloseReason::timeout_write);
  }
  co_return CloseReason::done;
}

}  // namespace salam::daemon
