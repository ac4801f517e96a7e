#include <netinet/in.h>
#include <sys/socket.h>

#include <salam/connection.hpp>

#include "engine.hpp"

namespace salam {

ConnectAwaiter connect(Loop& loop, const SocketAddress& target, Deadline deadline,
                       std::optional<SocketAddress> source) noexcept {
  return ConnectAwaiter(loop, target, deadline, source);
}

bool ConnectAwaiter::await_ready() noexcept {
  socket_.reset(::socket(target_.family(),
                         SOCK_STREAM | SOCK_CLOEXEC | detail::Engine::socket_flags(*loop_), 0));
  if (!socket_) {
    setup_error_ = errno;
    return true;
  }
  if (source_) {
    // Let connect choose the port, so that many sources do not each
    // reserve a port per connection at bind time.
    int one = 1;
    ::setsockopt(socket_.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (::bind(socket_.get(), source_->data(), source_->size()) != 0) {
      setup_error_ = errno;
      return true;
    }
  }
  return false;
}

bool ConnectAwaiter::await_suspend(std::coroutine_handle<> handle) noexcept {
  op_.code = detail::OpCode::connect;
  op_.fd = socket_.get();
  op_.buffer = const_cast<sockaddr*>(target_.data());
  op_.length = target_.size();
  op_.waiter = handle;
  op_.on_complete = [](detail::Operation& op) { op.waiter.resume(); };
  return !detail::Engine::start(*loop_, op_, deadline_);
}

Result<Connection> ConnectAwaiter::await_resume() noexcept {
  int error = setup_error_ != 0 ? setup_error_ : (op_.result < 0 ? -op_.result : 0);
  if (error != 0) {
    if (socket_) detail::Engine::forget_fd(*loop_, socket_.get());
    socket_.reset();
    return errno_code(error);
  }
  return Connection(*loop_, std::move(socket_), target_);
}

}  // namespace salam
