// Layer: a protocol that runs between a connection's socket and its
// handler, such as TLS.
//
// Once a layer is installed on a Connection (by tls::accept, for one),
// read(), read_some() and write_all() go through it, so that every handler
// works over it unchanged, and close() sends the layer's farewell (TLS's
// close_notify) before the FIN. The layer itself moves bytes only through
// the connection's own operations (detail::Engine::raw_read and
// raw_write_all), never behind the engine's back.
//
// Handed-back bytes (Connection::unread) belong to the level that read
// them: those handed back before the layer was installed are its input,
// those handed back afterwards are the handler's.
#pragma once

#include <cstddef>
#include <span>
#include <system_error>
#include <vector>

#include <salam/buffer.hpp>
#include <salam/result.hpp>
#include <salam/task.hpp>
#include <salam/time.hpp>

namespace salam {
class Connection;
}

namespace salam::detail {

class Layer {
 public:
  virtual ~Layer() = default;

  virtual Task<Result<InputBuffer>> read(Connection& connection, std::size_t max_bytes,
                                         Deadline deadline) = 0;
  virtual Task<Result<std::size_t>> read_some(Connection& connection, std::span<std::byte> into,
                                              Deadline deadline) = 0;
  virtual Task<std::error_code> write_all(Connection& connection, std::span<const std::byte> bytes,
                                          Deadline deadline) = 0;
  // The bytes to send before the FIN when the connection closes; empty if
  // there are none. Called at most once, with no write in flight.
  virtual std::vector<std::byte> farewell() noexcept = 0;
};

}  // namespace salam::detail
