#include "acceptor.hpp"

#include <cerrno>

#include <unistd.h>

#include <salam/log.hpp>
#include <salam/result.hpp>

#include "engine.hpp"
#include "shard.hpp"

namespace salam::detail {

namespace {

// Errors that belong to one connection that died in the accept queue, or
// that a retry fixes: skip them without a log line (nginx and libuv do the
// same).
bool is_transient(int error) noexcept {
  switch (error) {
    case ECONNABORTED:
    case EAGAIN:
    case EINTR:
    case EPERM:  // a firewall rule refused this one connection
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case ETIMEDOUT:
      return true;
    default:
      return false;
  }
}

bool is_resource_shortage(int error) noexcept {
  return error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM;
}

}  // namespace

Acceptor::Acceptor(Shard& shard, std::shared_ptr<FileDescriptor> listener, bool shared,
                   Handler handler)
    : shard_(shard),
      listener_(std::move(listener)),
      handler_(std::move(handler)),
      next_backoff_(shard.accept_backoff()),
      multishot_(!shared || shard.loop().backend() == BackendKind::epoll) {
  accept_.acceptor = this;
  backoff_.acceptor = this;
  backoff_.essential = true;  // out of memory too, it must still pause
}

void Acceptor::start() noexcept {
  arm();
}

void Acceptor::arm() noexcept {
  if (stopped_) return;
  accept_.code = OpCode::accept;
  accept_.multishot = multishot_;
  accept_.fd = listener_->get();
  accept_.buffer = &peer_;  // the peer's address, where the backend can give it
  accept_.length = sizeof peer_;
  accept_.on_complete = &Acceptor::on_accept;
  if (Engine::start(shard_.loop(), accept_)) on_result(accept_.result, false);
}

void Acceptor::stop() noexcept {
  if (stopped_) return;
  stopped_ = true;
  Engine::cancel(shard_.loop(), accept_);
  Engine::cancel(shard_.loop(), backoff_);
  Engine::unwatch_fd(shard_.loop(), listener_->get());
  Engine::submit_started(shard_.loop());  // the accept names the descriptor
  // What is queued now is taken now, while the shard surely still serves.
  // The cancelled accept may yet complete with a connection (io_uring also
  // holds its own reference to the socket until then): what it brings, and
  // what reached the queue meanwhile, is taken when it completes, in
  // on_result().
  take_queued();
  if (!accept_.in_flight) release();
}

void Acceptor::release() noexcept {
  if (!listener_) return;
  take_queued();
  // The socket closes when the last holder lets go (other shards may share
  // it).
  listener_.reset();
  shard_.acceptor_released();
}

void Acceptor::take_queued() noexcept {
  // A shard that would not serve them would only close what it took, and
  // the socket may live on in another process (after an upgrade), which
  // would serve them: the queue is left alone then.
  if (!shard_.would_serve()) return;
  for (int taken = 0; taken < kTakenAtStop; ++taken) {
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    const int socket =
        ::accept4(listener_->get(), reinterpret_cast<sockaddr*>(&peer), &length,
                  SOCK_CLOEXEC | Engine::socket_flags(shard_.loop()));  // as the loop's accepts
    if (socket >= 0) {
      hand_over(socket,
                SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&peer), length));
    } else if (errno == EAGAIN || !is_transient(errno)) {
      return;  // the queue is empty, or out of descriptors: the rest is reset
    }
  }
}

void Acceptor::hand_over(int socket, std::optional<SocketAddress> peer) noexcept {
  if (stopped_ && !shard_.would_serve()) {
    // The loop is ending or cutting its connections: nothing would serve it.
    ::close(socket);
    return;
  }
  shard_.serve(FileDescriptor(socket), peer, handler_);
}

void Acceptor::resume() noexcept {
  if (paused_) Engine::cancel(shard_.loop(), backoff_);
}

void Acceptor::on_accept(Operation& op) noexcept {
  auto& step = static_cast<Step&>(op);
  step.acceptor->on_result(op.result, (op.flags & kMoreCompletions) != 0);
}

void Acceptor::on_result(int result, bool more) noexcept {
  std::optional<SocketAddress> peer;
  if (result >= 0 && (accept_.flags & kHasPeer) != 0) {
    peer = SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&peer_), accept_.length);
  }
  if (stopped_) {
    // A connection accepted before the cancellation took effect is served
    // like those still queued, which the last completion takes.
    if (result >= 0) hand_over(result, peer);
    if (!accept_.in_flight) release();
    return;
  }
  if (result >= 0) {
    if (short_of_resources_) {
      short_of_resources_ = false;
      next_backoff_ = shard_.accept_backoff();
    }
    hand_over(result, peer);
  } else if (result == -ECANCELED) {
    return;
  } else if (is_resource_shortage(-result)) {
    shard_.count_accept_error(-result);
    pause(-result);
    return;
  } else if (!is_transient(-result)) {
    shard_.count_accept_error(-result);
    log::error("accept on shard {}: {}; this listener stops accepting here", shard_.index(),
               errno_code(result).message());
    return;
  }
  if (!more) arm();  // the multishot ended (after an error, or by the kernel's choice)
}

void Acceptor::pause(int error) noexcept {
  const bool first = !short_of_resources_;
  short_of_resources_ = true;
  paused_ = true;
  // Shedding one pending connection keeps its client from waiting in the
  // queue for a descriptor that may never come.
  shard_.shed_one(listener_->get());
  // At most one line a second, however often descriptors run out.
  if (first && shard_.loop().now() - last_warning_ >= std::chrono::seconds(1)) {
    last_warning_ = shard_.loop().now();
    // Running out of descriptors is critical, as nginx has it: the server
    // turns clients away until an operator raises the limit.
    const bool descriptors = error == EMFILE || error == ENFILE;
    log::message(descriptors ? log::Level::critical : log::Level::warning,
                 "accept: {}; pausing accept for {} ms, shedding pending connections",
                 errno_code(error).message(),
                 std::chrono::duration_cast<std::chrono::milliseconds>(next_backoff_).count());
  }
  backoff_.code = OpCode::sleep;
  backoff_.on_complete = &Acceptor::on_backoff_end;
  const Duration wait = next_backoff_;
  next_backoff_ = std::min(next_backoff_ * 2, shard_.accept_backoff_max());
  if (Engine::start(shard_.loop(), backoff_, Deadline(wait))) on_backoff_end(backoff_);
}

void Acceptor::on_backoff_end(Operation& op) noexcept {
  Acceptor& self = *static_cast<Step&>(op).acceptor;
  self.paused_ = false;
  if (!self.stopped_) self.arm();
}

}  // namespace salam::detail
