// Lingering close: the end of a connection that still has input queued,
// or that has a layer's farewell (TLS's close_notify) to send first.
//
// Closing a socket with unread input makes the kernel answer with an RST,
// and an RST can reach the peer before it has read the reply, which is
// then lost. So such a close shuts down writes (the FIN follows the reply)
// and reads and throws away input until the peer closes too, within the
// loop's linger bounds, before the descriptor is closed. The handler has
// already returned: the lingering is a task of the loop's own, and the
// loop's cancellation at shutdown cuts it short.
#include <salam/connection.hpp>
#include <salam/loop.hpp>

#include "engine.hpp"

namespace salam {

namespace {

Task<> linger_then_close(Connection connection, Duration timeout, std::size_t max_bytes,
                         std::vector<std::byte> farewell, bool drain, std::size_t& lingering) {
  const Deadline deadline(timeout);
  if (!farewell.empty() && co_await connection.write_all(farewell, deadline)) drain = false;
  if (drain && !connection.shutdown_write()) {
    std::size_t drained = 0;
    while (drained < max_bytes) {
      auto input = co_await connection.read(max_bytes - drained, deadline);
      if (!input || input->empty()) break;  // the peer closed, reset or took too long
      drained += input->size();
    }
  }
  detail::Engine::close_now(connection);
  --lingering;
}

}  // namespace

void Loop::linger(FileDescriptor socket, detail::ConnectionObserver* observer,
                  std::vector<std::byte> farewell, bool drain) noexcept {
  // This connection's own close never lingers, so that destroying it, if
  // there is no memory for the task, closes the socket at once.
  Connection lingering = detail::Engine::lingering_connection(*this, std::move(socket), observer);
  // Outside run() no task would ever run, and past the cap lingering would
  // hold descriptors no limit counts: close at once (an RST may follow).
  if (current_or_null() != this || lingering_ >= linger_max_connections_) {
    detail::Engine::close_now(lingering);
    return;
  }
  ++lingering_;  // the task counts itself out when it ends
  try {
    spawn(linger_then_close(std::move(lingering), linger_timeout_, linger_max_bytes_,
                            std::move(farewell), drain, lingering_));
  } catch (const std::bad_alloc&) {
    --lingering_;
    detail::Engine::close_now(lingering);
  }
}

}  // namespace salam
