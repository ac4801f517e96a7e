// discard (RFC 863): read and throw away until the client closes. Each
// buffer goes back to the pool as soon as it is read, so memory stays flat
// however much arrives.
#include "service.hpp"

namespace salam::daemon {

Task<Ending> serve_discard(Connection& client, const ServiceOptions& options,
                           const SessionFacts& /*facts*/) {
  for (;;) {
    auto input = co_await client.read(64 * 1024, options.idle_timeout);
    if (!input) co_return ending_for(input.error(), CloseReason::timeout_idle);
    if (input->empty()) break;
  }
  co_return CloseReason::done;
}

}  // namespace salam::daemon
