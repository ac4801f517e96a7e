#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <salam/connection.hpp>
#include <salam/detail/contract.hpp>
#include <salam/loop.hpp>

#include "engine.hpp"

namespace salam {

namespace {

void resume_waiter(detail::Operation& op) noexcept {
  op.waiter.resume();
}

// A layer's operation, run for an awaiter: started in its await_suspend
// (true: it suspended and resumes `handle` at its end) ...
template <typename T>
bool start_layered(Task<T>& task, std::coroutine_handle<> handle) noexcept {
  return std::move(task).operator co_await().await_suspend(handle);
}

// ... and its outcome taken in await_resume. A layer reports failures as
// values; what it could only throw (memory running out) becomes ENOMEM.
template <typename T>
T finish_layered(Task<T>& task) noexcept {
  try {
    return std::move(task).operator co_await().await_resume();
  } catch (...) {
    return T(errno_code(ENOMEM));
  }
}

}  // namespace

Connection::Connection(Loop& loop, FileDescriptor socket,
                       std::optional<SocketAddress> peer) noexcept
    : loop_(&loop), socket_(std::move(socket)), observer_(nullptr) {
  if (peer) peer_ = peer->without_v4_mapping();
}

Connection::Connection(Loop& loop, FileDescriptor socket,
                       detail::ConnectionObserver* observer) noexcept
    : loop_(&loop), socket_(std::move(socket)), observer_(observer) {}

Connection::Connection(Connection&& other) noexcept
    : loop_(other.loop_),
      socket_(std::move(other.socket_)),
      reader_(other.reader_),
      writer_(other.writer_),
      observer_(std::exchange(other.observer_, nullptr)),
      peer_(other.peer_),
      bytes_in_(other.bytes_in_),
      bytes_out_(other.bytes_out_),
      input_(other.input_),
      unread_(std::move(other.unread_)),
      caps_(std::move(other.caps_)),
      layer_(std::move(other.layer_)) {
  // The loop holds the operations' addresses while they are in flight.
  detail::expects(!reader_.in_flight && !writer_.in_flight,
                  "a Connection was moved while an operation on it was in flight");
}

Connection::~Connection() {
  detail::expects(!reader_.in_flight && !writer_.in_flight,
                  "a Connection was destroyed while an operation on it was in flight "
                  "(a task still reading or writing it must end first)");
  close();
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
  if (!is_open()) return not_connected();
  if (layer_) return std::make_error_code(std::errc::operation_not_supported);
  if (::shutdown(fd(), SHUT_WR) != 0) return errno_code(errno);
  return {};
}

std::error_code Connection::shutdown_read() noexcept {
  if (!is_open()) return not_connected();
  if (::shutdown(fd(), SHUT_RD) != 0) return errno_code(errno);
  return {};
}

void Connection::close(Linger linger) noexcept {
  if (!is_open()) return;
  if (linger == Linger::never) {
    close_now();
    return;
  }
  // A layer's last words (TLS's close_notify) go out before the FIN; not
  // after a write cut short, which left the layer's stream broken.
  std::vector<std::byte> farewell;
  if (layer_ && !writer_.in_flight) farewell = layer_->farewell();
  if (reader_.in_flight || writer_.in_flight) {
    // Another task of this connection waits in a read or write: it resumes
    // with cancelled() on the loop's next turn. The FIN goes out now; on
    // io_uring the kernel holds the socket open until the cancellation
    // lands, and close(2) alone would wait for it.
    if (reader_.in_flight) detail::Engine::cancel(*loop_, reader_);
    if (writer_.in_flight) detail::Engine::cancel(*loop_, writer_);
    detail::Engine::submit_started(*loop_);  // the operations reach the kernel first
    if (farewell.empty()) ::shutdown(fd(), SHUT_WR);
  }
  // Input left in the kernel would turn the close into an RST, which can
  // destroy the reply before the peer reads it. When the last read left
  // input queued (or the peer closed its side) that is known; otherwise
  // the kernel is asked, since input may have come after the last read (a
  // client still sending when the server gave up on it, as over a too-long
  // line). The question costs an ioctl per connection; lingering on mere
  // suspicion would cost a wait for the peer's FIN each time instead.
  bool input_left = input_ == Input::pending;
  if (!input_left && input_ != Input::ended) {
    int queued = 0;
    input_left = ::ioctl(fd(), FIONREAD, &queued) == 0 && queued > 0;
  }
  if (input_left || !farewell.empty()) {
    detail::Engine::linger(*loop_, std::move(socket_), std::exchange(observer_, nullptr),
                           std::move(farewell), input_left);
    return;
  }
  close_now();
}

void Connection::close_now() noexcept {
  if (!is_open()) return;
  if (reader_.in_flight || writer_.in_flight) {
    if (reader_.in_flight) detail::Engine::cancel(*loop_, reader_);
    if (writer_.in_flight) detail::Engine::cancel(*loop_, writer_);
    detail::Engine::submit_started(*loop_);  // before the number is free for reuse
  }
  detail::Engine::close_fd(*loop_, std::move(socket_));
  if (observer_ != nullptr) std::exchange(observer_, nullptr)->connection_closed();
}

int Connection::refusal(const detail::Operation& op, bool layered_busy, bool raw) const noexcept {
  if (!is_open()) return ENOTCONN;
  if (layer_ && !raw) return layered_busy ? EBUSY : 0;
  if (op.in_flight) return EBUSY;
  return 0;
}

void Connection::note_read(const detail::Operation& op, std::size_t requested) noexcept {
  note_result(op.result);
  if (op.result > 0) {
    const bool filled = static_cast<std::size_t>(op.result) >= requested;
    input_ = (op.flags & detail::kInputLeft) != 0 || filled ? Input::pending : Input::drained;
  } else if (op.result == 0) {
    input_ = Input::ended;
  } else {
    input_ = Input::unknown;
  }
}

// --- read ---

Connection::ReadAwaiter Connection::read(std::size_t max_bytes, Deadline deadline) noexcept {
  // At least one byte: a read of none would look like end of file.
  return ReadAwaiter(*this, deadline,
                     static_cast<std::uint32_t>(std::clamp<std::size_t>(max_bytes, 1, UINT32_MAX)),
                     false);
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

bool Connection::ReadAwaiter::await_ready() noexcept {
  refused_ = connection_->refusal(connection_->reader_, connection_->layered_reading_, raw_);
  if (refused_ != 0) return true;
  if (raw_) return false;  // a layer's read: handed-back bytes are the handler's
  if ((from_unread_ = connection_->has_unread())) return true;
  if (connection_->layer_) {
    try {
      layered_ = connection_->layer_->read(*connection_, max_bytes_, deadline_);
    } catch (const std::bad_alloc&) {
      refused_ = ENOMEM;
      return true;
    }
    connection_->layered_reading_ = true;
  }
  return false;
}

bool Connection::ReadAwaiter::await_suspend(std::coroutine_handle<> handle) noexcept {
  if (layered_.valid()) return start_layered(layered_, handle);
  detail::Operation& op = connection_->reader_;
  op.code = detail::OpCode::recv_pooled;
  op.fd = connection_->fd();
  op.length = max_bytes_;
  op.waiter = handle;
  op.on_complete = &resume_waiter;
  return !detail::Engine::start(connection_->loop(), op, connection_->capped(deadline_));
}

Result<InputBuffer> Connection::ReadAwaiter::await_resume() noexcept {
  if (refused_ != 0) return errno_code(refused_);
  if (layered_.valid()) {
    connection_->layered_reading_ = false;
    return finish_layered(layered_);
  }
  // Handed-back bytes were counted in bytes_in when first read.
  if (from_unread_) return connection_->take_unread(max_bytes_);
  const detail::Operation& op = connection_->reader_;
  Loop& loop = connection_->loop();
  InputBuffer input;
  if ((op.flags & detail::kHasBuffer) != 0) {
    // Even an empty or failed read may have taken a buffer: the lease
    // returns it either way.
    input = InputBuffer(&loop, op.buffer_id, detail::Engine::buffer_data(loop, op.buffer_id),
                        op.result > 0 ? static_cast<std::size_t>(op.result) : 0);
  }
  connection_->note_read(op, std::min(max_bytes_, detail::Engine::buffer_size(loop)));
  if (op.result < 0) return errno_code(op.result);
  connection_->bytes_in_ += static_cast<std::uint64_t>(op.result);
  if (!input.empty() && detail::Engine::buffers_scarce(loop)) {
    // The handler may keep these bytes across a wait (echo, writing them
    // back to a client that does not read). With the pool nearly lent out,
    // move them out of it, so that such handlers cannot starve every other
    // connection's reads. Without memory for the copy, the lease stays.
    try {
      input.detach();
    } catch (const std::bad_alloc&) {
    }
  }
  return input;
}

Connection::ReadSomeAwaiter Connection::read_some(std::span<std::byte> into,
                                                  Deadline deadline) noexcept {
  return ReadSomeAwaiter(*this, deadline, into);
}

bool Connection::ReadSomeAwaiter::await_ready() noexcept {
  refused_ = connection_->refusal(connection_->reader_, connection_->layered_reading_, false);
  if (refused_ != 0) return true;
  if ((from_unread_ = connection_->has_unread())) return true;
  if (connection_->layer_) {
    try {
      layered_ = connection_->layer_->read_some(*connection_, into_, deadline_);
    } catch (const std::bad_alloc&) {
      refused_ = ENOMEM;
      return true;
    }
    connection_->layered_reading_ = true;
  }
  return false;
}

bool Connection::ReadSomeAwaiter::await_suspend(std::coroutine_handle<> handle) noexcept {
  if (layered_.valid()) return start_layered(layered_, handle);
  detail::Operation& op = connection_->reader_;
  op.code = detail::OpCode::recv;
  op.fd = connection_->fd();
  op.buffer = into_.data();
  op.length = static_cast<std::uint32_t>(std::min<std::size_t>(into_.size(), INT_MAX));
  op.waiter = handle;
  op.on_complete = &resume_waiter;
  return !detail::Engine::start(connection_->loop(), op, connection_->capped(deadline_));
}

Result<std::size_t> Connection::ReadSomeAwaiter::await_resume() noexcept {
  if (refused_ != 0) return errno_code(refused_);
  if (layered_.valid()) {
    connection_->layered_reading_ = false;
    return finish_layered(layered_);
  }
  if (from_unread_) {
    InputBuffer input = connection_->take_unread(into_.size());
    std::copy_n(input.bytes().data(), input.size(), into_.data());
    return input.size();
  }
  const detail::Operation& op = connection_->reader_;
  connection_->note_read(op, op.length);
  if (op.result < 0) return errno_code(op.result);
  connection_->bytes_in_ += static_cast<std::uint64_t>(op.result);
  return static_cast<std::size_t>(op.result);
}

// --- write ---

Connection::WriteAllAwaiter Connection::write_all(std::span<const std::byte> bytes,
                                                  Deadline deadline) noexcept {
  return WriteAllAwaiter(*this, deadline, bytes, false);
}

Connection::WriteAllAwaiter Connection::write_all(std::string_view text,
                                                  Deadline deadline) noexcept {
  return write_all(std::as_bytes(std::span(text.data(), text.size())), deadline);
}

bool Connection::WriteAllAwaiter::await_ready() noexcept {
  if (left_ == 0) return true;
  if (int refused = connection_->refusal(connection_->writer_, connection_->layered_writing_, raw_);
      refused != 0) {
    error_ = errno_code(refused);
    return true;
  }
  if (!raw_ && connection_->layer_) {
    try {
      layered_ = connection_->layer_->write_all(*connection_, {next_, left_}, deadline_);
    } catch (const std::bad_alloc&) {
      error_ = errno_code(ENOMEM);
      return true;
    }
    connection_->layered_writing_ = true;
  }
  return false;
}

bool Connection::WriteAllAwaiter::await_suspend(std::coroutine_handle<> handle) noexcept {
  if (layered_.valid()) return start_layered(layered_, handle);
  waiter_ = handle;
  WriteOperation& op = connection_->writer_;
  op.code = detail::OpCode::send;
  op.fd = connection_->fd();
  op.awaiter = this;
  op.on_complete = &WriteAllAwaiter::on_sent;
  return !send_until_pending();
}

// Starts sends until one is pending (returns false) or all is sent or an
// error ended it (returns true).
bool Connection::WriteAllAwaiter::send_until_pending() noexcept {
  Loop& loop = connection_->loop();
  WriteOperation& op = connection_->writer_;
  while (left_ > 0) {
    if (!connection_->is_open()) {  // close() came between two sends
      error_ = cancelled();
      return true;
    }
    op.buffer = const_cast<std::byte*>(next_);
    op.length = static_cast<std::uint32_t>(std::min<std::size_t>(left_, INT_MAX));
    // Capped per send: the rate cap moves on as bytes go out.
    if (!detail::Engine::start(loop, op, connection_->capped(deadline_))) return false;
    if (!consume()) return true;
  }
  return true;
}

// Accounts for one finished send; returns true if more is to be sent.
bool Connection::WriteAllAwaiter::consume() noexcept {
  const int result = connection_->writer_.result;
  connection_->note_result(result);
  if (result < 0) {
    error_ = errno_code(result);
    return false;
  }
  if (result == 0) {  // send(2) of a non-empty buffer never returns 0 on a stream socket
    error_ = std::make_error_code(std::errc::broken_pipe);
    return false;
  }
  auto sent = static_cast<std::size_t>(result);
  connection_->bytes_out_ += sent;
  next_ += sent;
  left_ -= sent;
  return left_ > 0;
}

std::error_code Connection::WriteAllAwaiter::await_resume() noexcept {
  if (layered_.valid()) {
    connection_->layered_writing_ = false;
    return finish_layered(layered_);
  }
  return error_;
}

void Connection::WriteAllAwaiter::on_sent(detail::Operation& op) noexcept {
  WriteAllAwaiter& self = *static_cast<WriteOperation&>(op).awaiter;
  if (self.consume() && !self.send_until_pending()) return;
  self.waiter_.resume();
}

}  // namespace salam
