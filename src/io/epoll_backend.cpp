// The epoll backend: completion semantics on top of readiness.
//
// Each operation is tried at once (most sends, and reads on busy sockets,
// finish there without touching epoll). On EAGAIN it is parked in its
// descriptor's reader or writer slot, and retried when epoll reports the
// descriptor ready. Descriptors are registered once, edge-triggered, on
// their first EAGAIN; the registration goes away with close(2).
//
// A multishot accept stays parked and accepts up to kAcceptsPerTurn (4)
// connections per wake-up; if more may be pending it is queued to run
// again on the next turn, so a flood of connects cannot starve the
// connections already accepted.
#include <algorithm>
#include <array>
#include <cerrno>
#include <system_error>
#include <vector>

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <salam/log.hpp>
#include <salam/result.hpp>

#include "engine.hpp"
#include "io/backend.hpp"

namespace salam::detail {

namespace {

// Few per wake-up: with 64, a shard that woke drained a shared listener's
// queue while the other shards idled (1592 of 2000 connections on one of
// two shards in ServerTest.EveryShardServesAFairShare); with 4 they share
// evenly, and a greeting cost the same on one shard (6.6-6.8 us of server
// CPU with 1, 8 or 64).
constexpr int kAcceptsPerTurn = 4;

bool is_reader(const Operation& op) noexcept {
  return op.code == OpCode::accept || op.code == OpCode::recv || op.code == OpCode::recv_pooled ||
         op.code == OpCode::read;
}

int errno_result() noexcept {
  return -errno;
}

class EpollBackend final : public Backend {
 public:
  EpollBackend(Loop& loop, BufferPool& buffers) : Backend(loop, buffers) {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) throw std::system_error(errno, std::system_category(), "epoll_create1");
  }
  ~EpollBackend() override { ::close(epoll_fd_); }

  bool start(Operation& op) noexcept override {
    if (op.code == OpCode::connect) return start_connect(op);
    if (op.multishot) {
      // Registration reports a listener that is already readable, but a
      // re-armed one (registered before) would wait for the next connect:
      // try on the next turn either way.
      if (!park(op)) return true;
      again_.push_back(&op);
      return false;
    }
    if (attempt(op)) return true;
    return !park(op);
  }

  void cancel(Operation& op) noexcept override {
    if (static_cast<std::size_t>(op.fd) < fds_.size()) {
      FdState& state = fds_[static_cast<std::size_t>(op.fd)];
      if (state.reader == &op) state.reader = nullptr;
      if (state.writer == &op) state.writer = nullptr;
    }
    std::erase(again_, &op);
    op.result = -ECANCELED;
    op.flags = 0;
    Engine::complete_later(loop_, op);
  }

  void wait(Duration timeout) noexcept override {
    int timeout_ms = -1;
    if (!again_.empty()) {
      timeout_ms = 0;
    } else if (timeout >= Duration::zero()) {
      timeout_ms = static_cast<int>(std::min<std::int64_t>(
          std::chrono::ceil<std::chrono::milliseconds>(timeout).count(), 24 * 3600 * 1000));
    }
    std::array<epoll_event, 256> events;
    int count = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout_ms);
    if (count < 0) {
      if (errno != EINTR) log::error("epoll_wait: {}", errno_code(errno).message());
      count = 0;
    }
    for (int i = 0; i < count; ++i) {
      const int fd = events[i].data.fd;
      const std::uint32_t ready = events[i].events;
      if ((ready & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) retry(fd, &FdState::reader);
      if ((ready & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0) retry(fd, &FdState::writer);
    }
    again_batch_.swap(again_);  // trading places: no allocation once warm
    for (Operation* op : again_batch_) {
      if (slot_of(*op) == op) run_multishot(*op);
    }
    again_batch_.clear();
  }

  void submit_started() noexcept override {}  // nothing is queued: epoll acts at once

  void close_fd(int fd) noexcept override {
    forget_fd(fd);
    ::close(fd);
  }

  void forget_fd(int fd) noexcept override {
    if (static_cast<std::size_t>(fd) >= fds_.size()) return;
    FdState& state = fds_[static_cast<std::size_t>(fd)];
    state = FdState{};
  }

  void unwatch_fd(int fd) noexcept override {
    if (static_cast<std::size_t>(fd) >= fds_.size()) return;
    // The file stays open in other shards, so close(2) will not remove it
    // from this epoll set (and from its EPOLLEXCLUSIVE wake-ups): do it now,
    // and forget it, so that a later descriptor with this number is
    // registered afresh.
    if (fds_[static_cast<std::size_t>(fd)].registered)
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    forget_fd(fd);
  }

  bool buffers_scarce() const noexcept override { return buffers_.scarce(buffers_.free_count()); }

  void recycle_buffer(std::uint16_t id) noexcept override { buffers_.put(id); }

  int socket_flags() const noexcept override { return SOCK_NONBLOCK; }

 private:
  struct FdState {
    Operation* reader = nullptr;
    Operation* writer = nullptr;
    bool registered = false;
  };

  FdState& state_of(int fd) {
    auto index = static_cast<std::size_t>(fd);
    if (index >= fds_.size()) fds_.resize(std::max<std::size_t>(index + 1, fds_.size() * 2));
    return fds_[index];
  }

  Operation* slot_of(const Operation& op) noexcept {
    auto index = static_cast<std::size_t>(op.fd);
    if (index >= fds_.size()) return nullptr;
    return is_reader(op) ? fds_[index].reader : fds_[index].writer;
  }

  // Parks `op` until its descriptor is ready. Returns false (with
  // op.result set) if it cannot be parked.
  bool park(Operation& op) noexcept {
    if (op.fd < 0) {
      op.result = -EBADF;
      return false;
    }
    FdState* found = nullptr;
    try {
      found = &state_of(op.fd);
    } catch (const std::bad_alloc&) {
      op.result = -ENOMEM;
      return false;
    }
    FdState& state = *found;
    Operation*& slot = is_reader(op) ? state.reader : state.writer;
    if (slot != nullptr) {
      op.result = -EBUSY;  // one reader and one writer per descriptor at a time
      return false;
    }
    if (!state.registered) {
      epoll_event event{};
      event.data.fd = op.fd;
      event.events = op.code == OpCode::accept ? EPOLLIN | EPOLLET | EPOLLEXCLUSIVE
                                               : EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
      if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, op.fd, &event) != 0 && errno != EEXIST) {
        op.result = errno_result();
        return false;
      }
      state.registered = true;
    }
    slot = &op;
    return true;
  }

  void retry(int fd, Operation* FdState::*which) noexcept {
    if (static_cast<std::size_t>(fd) >= fds_.size()) return;
    Operation* op = fds_[static_cast<std::size_t>(fd)].*which;
    if (op == nullptr) return;
    if (op->multishot) {
      run_multishot(*op);
      return;
    }
    if (!attempt(*op)) return;
    fds_[static_cast<std::size_t>(fd)].*which = nullptr;
    Engine::complete(loop_, *op);
  }

  void run_multishot(Operation& op) noexcept {
    for (int i = 0; i < kAcceptsPerTurn; ++i) {
      // The peer's address comes with the accept, where the caller has room:
      // it saves a getpeername later.
      socklen_t length = op.buffer != nullptr ? sizeof(sockaddr_storage) : 0;
      int fd = ::accept4(op.fd, static_cast<sockaddr*>(op.buffer),
                         op.buffer != nullptr ? &length : nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0 && (errno == EAGAIN || errno == EINTR)) return;
      op.result = fd >= 0 ? fd : errno_result();
      op.flags = fd >= 0 ? kMoreCompletions : 0;
      if (fd >= 0 && op.buffer != nullptr) {
        op.length = length;
        op.flags |= kHasPeer;
      }
      if (fd < 0)
        fds_[static_cast<std::size_t>(op.fd)].reader = nullptr;  // like io_uring: an error ends it
      Engine::complete(loop_, op);
      if (fd < 0 || slot_of(op) != &op || op.cancel_requested) return;
    }
    again_.push_back(&op);
  }

  // Performs `op` once, without blocking. Returns false on EAGAIN.
  bool attempt(Operation& op) noexcept {
    ssize_t n = 0;
    switch (op.code) {
      case OpCode::accept:
        n = ::accept4(op.fd, static_cast<sockaddr*>(op.buffer), op.buffer ? &op.length : nullptr,
                      SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (n >= 0 && op.buffer != nullptr) op.flags |= kHasPeer;
        break;
      case OpCode::recv:
        n = ::recv(op.fd, op.buffer, op.length, op.msg_flags | MSG_DONTWAIT);
        // A read that filled its buffer may have left more behind.
        if (n > 0 && static_cast<std::size_t>(n) == op.length) op.flags |= kInputLeft;
        break;
      case OpCode::recv_pooled:
        return attempt_pooled_recv(op);
      case OpCode::send:
        n = ::send(op.fd, op.buffer, op.length, op.msg_flags | MSG_NOSIGNAL | MSG_DONTWAIT);
        break;
      case OpCode::connect:
        return finish_connect(op);
      case OpCode::read:
        n = ::read(op.fd, op.buffer, op.length);
        break;
      case OpCode::sleep:
        break;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return false;
    op.result = n < 0 ? errno_result() : static_cast<int>(n);
    return true;
  }

  bool attempt_pooled_recv(Operation& op) noexcept {
    auto id = buffers_.take();
    if (!id) {
      op.result = -ENOBUFS;
      return true;
    }
    ssize_t n = ::recv(op.fd, buffers_.data(*id), std::min(op.length, buffers_.buffer_size()),
                       op.msg_flags | MSG_DONTWAIT);
    if (n > 0) {
      op.result = static_cast<int>(n);
      op.flags |= kHasBuffer;
      if (static_cast<std::uint32_t>(n) == std::min(op.length, buffers_.buffer_size()))
        op.flags |= kInputLeft;  // it filled its buffer: more may be queued
      op.buffer_id = *id;
      return true;
    }
    int error = errno;
    buffers_.put(*id);
    if (n < 0 && (error == EAGAIN || error == EWOULDBLOCK || error == EINTR)) return false;
    op.result = n < 0 ? -error : 0;
    return true;
  }

  // connect(2) once; if it is in progress, park until the socket is
  // writable, when retry() calls finish_connect().
  bool start_connect(Operation& op) noexcept {
    if (::connect(op.fd, static_cast<const sockaddr*>(op.buffer), op.length) == 0) {
      op.result = 0;
      return true;
    }
    if (errno != EINPROGRESS && errno != EINTR) {
      op.result = errno_result();
      return true;
    }
    return !park(op);
  }

  bool finish_connect(Operation& op) noexcept {
    int error = 0;
    socklen_t length = sizeof error;
    if (::getsockopt(op.fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
    if (error == 0) {
      // A stale wake-up can arrive before the handshake ends: only a socket
      // with a peer is connected.
      sockaddr_storage peer{};
      socklen_t peer_length = sizeof peer;
      if (::getpeername(op.fd, reinterpret_cast<sockaddr*>(&peer), &peer_length) != 0) {
        return errno != ENOTCONN ? (op.result = errno_result(), true) : false;
      }
    }
    op.result = -error;
    return true;
  }

  int epoll_fd_ = -1;
  std::vector<FdState> fds_;
  std::vector<Operation*> again_;
  std::vector<Operation*> again_batch_;
};

}  // namespace

std::unique_ptr<Backend> make_epoll_backend(Loop& loop, BufferPool& buffers) {
  return std::make_unique<EpollBackend>(loop, buffers);
}

}  // namespace salam::detail
