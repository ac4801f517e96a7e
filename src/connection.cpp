#include <algorithm>
#include <cassert>
#include <cerrno>
#include <climits>
#include <cstring>

#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <salam/connection.hpp>
#include <salam/loop.hpp>

namespace salam {

namespace {

void resume_waiter(detail::Operation& op) noexcept {
  op.waiter.resume();
}

}  // namespace

void InputBuffer::detach() {
  if (loop_ == nullptr) return;
  auto copy = std::make_unique_for_overwrite<std::byte[]>(size_);
  std::copy_n(data_, size_, copy.get());
  const std::size_t size = size_;
  release();
  *this = InputBuffer(std::move(copy), size);
}

void InputBuffer::release() noexcept {
  if (loop_ != nullptr) loop_->recycle_buffer(id_);
  loop_ = nullptr;
  owned_.reset();
  data_ = nullptr;
  size_ = 0;
}

Connection::Connection(Loop& loop, FileDescriptor socket, std::optional<SocketAddress> peer,
                       detail::ConnectionObserver* observer) noexcept
    : loop_(&loop), socket_(std::move(socket)), observer_(observer) {
  if (peer) peer_ = peer->without_v4_mapping();
}

Connection::Connection(Connection&& other) noexcept
    : loop_(other.loop_),
      socket_(std::move(other.socket_)),
      reader_(other.reader_),
      writer_(other.writer_),
      observer_(std::exchange(other.observer_, nullptr)),
      peer_(other.peer_),
      bytes_in_(other.bytes_in_),
      bytes_out_(other.bytes_out_),
      unread_(std::move(other.unread_)),
      caps_(std::move(other.caps_)) {
  // The loop holds the operations' addresses while they are in flight.
  assert(!reader_.in_flight && !writer_.in_flight && "a Connection moved during an operation");
}

void Connection::set_lifetime(Deadline end) noexcept {
  if (!caps_) caps_ = std::make_unique<Caps>();
  caps_->end = end.at();
}

void Connection::set_minimum_rate(double bytes_per_second, Duration grace) noexcept {
  if (!caps_) caps_ = std::make_unique<Caps>();
  caps_->minimum_rate = bytes_per_second;
  caps_->grace = grace;
  caps_->rate_start = Clock::now();
}

Deadline Connection::capped(Deadline requested) noexcept {
  if (!caps_) return requested;
  TimePoint deadline = requested.at();
  caps_->nearest = Expiry::none;
  if (caps_->end < deadline) {
    deadline = caps_->end;
    caps_->nearest = Expiry::lifetime;
  }
  if (caps_->minimum_rate > 0) {
    // The moment the average rate would fall below the minimum if nothing
    // more moved: rate_start + moved / rate, but not before the grace ends.
    const double moved = static_cast<double>(bytes_in_ + bytes_out_);
    const auto allowed = std::chrono::duration_cast<Duration>(
        std::chrono::duration<double>(moved / caps_->minimum_rate));
    const TimePoint too_slow_at = caps_->rate_start + std::max(caps_->grace, allowed);
    if (too_slow_at < deadline) {
      deadline = too_slow_at;
      caps_->nearest = Expiry::rate;
    }
  }
  return Deadline(deadline);
}

const SocketAddress& Connection::peer() const noexcept {
  if (!peer_) {
    // Multishot accept does not report addresses; ask once, when needed.
    sockaddr_storage raw{};
    socklen_t length = sizeof raw;
    std::optional<SocketAddress> address;
    if (::getpeername(fd(), reinterpret_cast<sockaddr*>(&raw), &length) == 0) {
      address = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&raw), length);
    }
    peer_ = address ? address->without_v4_mapping() : SocketAddress{};
  }
  return *peer_;
}

std::optional<SocketAddress> Connection::local() const noexcept {
  sockaddr_storage raw{};
  socklen_t length = sizeof raw;
  if (::getsockname(fd(), reinterpret_cast<sockaddr*>(&raw), &length) != 0) return std::nullopt;
  auto address = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&raw), length);
  if (address) return address->without_v4_mapping();
  return address;
}

std::error_code Connection::shutdown_write() noexcept {
  if (::shutdown(fd(), SHUT_WR) != 0) return errno_code(errno);
  return {};
}

std::error_code Connection::shutdown_read() noexcept {
  if (::shutdown(fd(), SHUT_RD) != 0) return errno_code(errno);
  return {};
}

void Connection::close() noexcept {
  if (!socket_.valid()) return;
  loop_->forget_fd(socket_.get());
  socket_.reset();
  if (observer_ != nullptr) std::exchange(observer_, nullptr)->connection_closed();
}

Task<std::error_code> Connection::close_gracefully(LingerOptions linger) {
  if (!is_open()) co_return std::error_code{};
  // With no input left unread, closing sends a FIN after the reply and
  // nothing that could draw an RST: close now, and spare the wait for the
  // peer's FIN (a fifth of the cost of a short connection). Input still
  // queued is what lingering is for.
  int unread = 0;
  if (::ioctl(fd(), FIONREAD, &unread) == 0 && unread == 0) {
    close();
    co_return std::error_code{};
  }
  std::error_code error = shutdown_write();

  if (!error) {
    const Deadline deadline(linger.timeout);
    std::size_t drained = 0;
    for (;;) {
      auto input = co_await read(loop_->buffer_size(), deadline);
      if (!input) {
        error = input.error();
        break;
      }
      if (input->empty()) break;  // the peer closed: it has read everything we sent
      drained += input->size();
      if (drained >= linger.max_bytes) {
        error = std::make_error_code(std::errc::message_size);
        break;
      }
    }
  }
  close();
  co_return error;
}

// --- read ---

Connection::ReadAwaiter Connection::read(std::size_t max_bytes, Deadline deadline) noexcept {
  return ReadAwaiter{this, deadline,
                     static_cast<std::uint32_t>(std::min<std::size_t>(max_bytes, UINT32_MAX))};
}

void Connection::unread(std::span<const std::byte> bytes) {
  if (bytes.empty()) return;
  if (!unread_) unread_ = std::make_unique<std::vector<std::byte>>();
  unread_->insert(unread_->begin(), bytes.begin(), bytes.end());
}

InputBuffer Connection::take_unread(std::size_t max_bytes) {
  const std::size_t size = std::min(max_bytes, unread_->size());
  auto bytes = std::make_unique_for_overwrite<std::byte[]>(size);
  std::copy_n(unread_->begin(), size, bytes.get());
  unread_->erase(unread_->begin(), unread_->begin() + static_cast<std::ptrdiff_t>(size));
  if (unread_->empty()) unread_.reset();
  return InputBuffer(std::move(bytes), size);
}

bool Connection::ReadAwaiter::await_suspend(std::coroutine_handle<> handle) noexcept {
  detail::Operation& op = connection->reader_;
  op.code = detail::OpCode::recv_pooled;
  op.fd = connection->fd();
  op.length = max_bytes;
  op.waiter = handle;
  op.on_complete = &resume_waiter;
  return !connection->loop().start(op, connection->capped(deadline));
}

Result<InputBuffer> Connection::ReadAwaiter::await_resume() noexcept {
  // Handed-back bytes were counted in bytes_in when first read.
  if (from_unread) return connection->take_unread(max_bytes);
  const detail::Operation& op = connection->reader_;
  Loop& loop = connection->loop();
  InputBuffer input;
  if ((op.flags & detail::kHasBuffer) != 0) {
    // Even an empty or failed read may have taken a buffer: the lease
    // returns it either way.
    input = InputBuffer(&loop, op.buffer_id, loop.buffer_data(op.buffer_id),
                        op.result > 0 ? static_cast<std::size_t>(op.result) : 0);
  }
  connection->note_result(op.result);
  if (op.result < 0) return errno_code(op.result);
  connection->bytes_in_ += static_cast<std::uint64_t>(op.result);
  return input;
}

Connection::ReadSomeAwaiter Connection::read_some(std::span<std::byte> into,
                                                  Deadline deadline) noexcept {
  return ReadSomeAwaiter{this, deadline, into};
}

bool Connection::ReadSomeAwaiter::await_suspend(std::coroutine_handle<> handle) noexcept {
  detail::Operation& op = connection->reader_;
  op.code = detail::OpCode::recv;
  op.fd = connection->fd();
  op.buffer = into.data();
  op.length = static_cast<std::uint32_t>(std::min<std::size_t>(into.size(), INT_MAX));
  op.waiter = handle;
  op.on_complete = &resume_waiter;
  return !connection->loop().start(op, connection->capped(deadline));
}

Result<std::size_t> Connection::ReadSomeAwaiter::await_resume() noexcept {
  if (from_unread) {
    InputBuffer input = connection->take_unread(into.size());
    std::copy_n(input.bytes().data(), input.size(), into.data());
    return input.size();
  }
  const int result = connection->reader_.result;
  connection->note_result(result);
  if (result < 0) return errno_code(result);
  connection->bytes_in_ += static_cast<std::uint64_t>(result);
  return static_cast<std::size_t>(result);
}

// --- write ---

Connection::WriteAllAwaiter Connection::write_all(std::span<const std::byte> bytes,
                                                  Deadline deadline) noexcept {
  return WriteAllAwaiter{this, deadline, bytes.data(), bytes.size(), {}, {}};
}

Connection::WriteAllAwaiter Connection::write_all(std::string_view text,
                                                  Deadline deadline) noexcept {
  return write_all(std::as_bytes(std::span(text.data(), text.size())), deadline);
}

bool Connection::WriteAllAwaiter::await_suspend(std::coroutine_handle<> handle) noexcept {
  waiter = handle;
  WriteOperation& op = connection->writer_;
  op.code = detail::OpCode::send;
  op.fd = connection->fd();
  op.awaiter = this;
  op.on_complete = &WriteAllAwaiter::on_sent;
  return !send_until_pending();
}

// Starts sends until one is pending (returns false) or all is sent or an
// error ended it (returns true).
bool Connection::WriteAllAwaiter::send_until_pending() noexcept {
  Loop& loop = connection->loop();
  WriteOperation& op = connection->writer_;
  while (left > 0) {
    op.buffer = const_cast<std::byte*>(next);
    op.length = static_cast<std::uint32_t>(std::min<std::size_t>(left, INT_MAX));
    // Capped per send: the rate cap moves on as bytes go out.
    if (!loop.start(op, connection->capped(deadline))) return false;
    if (!consume()) return true;
  }
  return true;
}

// Accounts for one finished send; returns true if more is to be sent.
bool Connection::WriteAllAwaiter::consume() noexcept {
  const int result = connection->writer_.result;
  connection->note_result(result);
  if (result < 0) {
    error = errno_code(result);
    return false;
  }
  if (result == 0) {  // send(2) of a non-empty buffer never returns 0 on a stream socket
    error = std::make_error_code(std::errc::broken_pipe);
    return false;
  }
  auto sent = static_cast<std::size_t>(result);
  connection->bytes_out_ += sent;
  next += sent;
  left -= sent;
  return left > 0;
}

void Connection::WriteAllAwaiter::on_sent(detail::Operation& op) noexcept {
  WriteAllAwaiter& self = *static_cast<WriteOperation&>(op).awaiter;
  if (self.consume() && !self.send_until_pending()) return;
  self.waiter.resume();
}

// --- connect ---

ConnectAwaiter connect(Loop& loop, const SocketAddress& target, Deadline deadline,
                       std::optional<SocketAddress> source) noexcept {
  ConnectAwaiter awaiter;
  awaiter.loop = &loop;
  awaiter.target = target;
  awaiter.source = source;
  awaiter.deadline = deadline;
  return awaiter;
}

bool ConnectAwaiter::await_ready() noexcept {
  socket.reset(::socket(target.family(), SOCK_STREAM | SOCK_CLOEXEC | loop->socket_flags(), 0));
  if (!socket) {
    setup_error = errno;
    return true;
  }
  if (source) {
    // Let connect choose the port, so that many sources do not each
    // reserve a port per connection at bind time.
    int one = 1;
    ::setsockopt(socket.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (::bind(socket.get(), source->data(), source->size()) != 0) {
      setup_error = errno;
      return true;
    }
  }
  return false;
}

bool ConnectAwaiter::await_suspend(std::coroutine_handle<> handle) noexcept {
  code = detail::OpCode::connect;
  fd = socket.get();
  buffer = const_cast<sockaddr*>(target.data());
  length = target.size();
  waiter = handle;
  on_complete = &resume_waiter;
  return !loop->start(*this, deadline);
}

Result<Connection> ConnectAwaiter::await_resume() noexcept {
  int error = setup_error != 0 ? setup_error : (result < 0 ? -result : 0);
  if (error != 0) {
    if (socket) loop->forget_fd(socket.get());
    socket.reset();
    return errno_code(error);
  }
  return Connection(*loop, std::move(socket), target);
}

}  // namespace salam
