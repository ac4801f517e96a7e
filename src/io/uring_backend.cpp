// The io_uring backend: every operation is one SQE whose user_data is the
// Operation's address; the CQE carries the result back.
//
// Kernel features relied on (Linux 5.19+): multishot accept, provided-buffer
// rings, IORING_FEAT_NODROP (a full CQ ring holds completions in the kernel
// instead of dropping them). Optional: SINGLE_ISSUER and DEFER_TASKRUN
// (6.1+) let completions run only when the loop asks for them, which saves
// interrupts of the loop's thread. Each ring is restricted to the
// operations this file submits (Linux 5.10+; without it, it runs
// unrestricted).
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <new>
#include <system_error>
#include <vector>

#include <liburing.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <salam/log.hpp>
#include <salam/result.hpp>

#include "engine.hpp"
#include "io/backend.hpp"
#include "sanitizers.hpp"

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

namespace salam::detail {

namespace {

// ThreadSanitizer models descriptors, and does not see a close made by the
// kernel for a ring: a number closed that way and made again by another
// thread (socketpair, for the exec service) looks to it like a race. Under
// it, descriptors are closed with close(2), as when the queue is full
// (kThreadSanitizer, in close_fd()).

// liburing maps a ring's queues with raw mmap and munmap system calls,
// which ThreadSanitizer does not see. When a shard's ring goes and another
// shard's new ring is mapped at the same address, TSan would take the new
// ring's writes for a race with the old one's. The kernel orders them (the
// memory was unmapped first); these annotations say so. Nothing otherwise.
#if defined(__SANITIZE_THREAD__)
void annotate_ring(const io_uring& ring, void (*annotate)(void*)) noexcept {
  annotate(ring.sq.sqes);
  annotate(ring.sq.ring_ptr);
  annotate(ring.cq.ring_ptr);
}
void ring_unmapping(const io_uring& ring) noexcept {
  annotate_ring(ring, &__tsan_release);
}
void ring_mapped(const io_uring& ring) noexcept {
  annotate_ring(ring, &__tsan_acquire);
}
#else
void ring_unmapping(const io_uring&) noexcept {}
void ring_mapped(const io_uring&) noexcept {}
#endif

// user_data of SQEs whose completion nobody waits for (cancellations).
constexpr std::uint64_t kIgnored = 0;
constexpr std::uint16_t kBufferGroup = 0;

// The operations prepare(), close_fd() and submit_cancel() submit, and
// POLL_ADD (waiting for a descriptor to be readable). Operations submitted
// through a ring are no system calls, so a seccomp filter does not see
// them: each ring refuses (EACCES) any other, and every register
// operation once enabled. A new operation goes here too.
constexpr auto kAllowedOps = std::to_array<std::uint8_t>({
    IORING_OP_ACCEPT,
    IORING_OP_RECV,
    IORING_OP_SEND,
    IORING_OP_CONNECT,
    IORING_OP_READ,
    IORING_OP_CLOSE,
    IORING_OP_ASYNC_CANCEL,
    IORING_OP_POLL_ADD,
    IORING_OP_NOP,
});
constexpr std::uint8_t kAllowedSqeFlags = IOSQE_BUFFER_SELECT | IOSQE_CQE_SKIP_SUCCESS;

// io_uring_register(2) itself: Debian's liburing 2.3 declares
// io_uring_register_restrictions() and io_uring_enable_rings() but does
// not export them.
int register_ring(io_uring& ring, unsigned operation, void* argument, unsigned count) {
  const long result = ::syscall(__NR_io_uring_register, ring.ring_fd, operation, argument, count);
  return result < 0 ? -errno : 0;
}

// Restricts a ring made disabled (IORING_SETUP_R_DISABLED), then enables it.
int restrict_and_enable(io_uring& ring) {
  std::array<io_uring_restriction, kAllowedOps.size() + 1> restrictions{};
  for (std::size_t i = 0; i < kAllowedOps.size(); ++i) {
    restrictions[i].opcode = IORING_RESTRICTION_SQE_OP;
    restrictions[i].sqe_op = kAllowedOps[i];
  }
  restrictions.back().opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED;
  restrictions.back().sqe_flags = kAllowedSqeFlags;
  const int result = register_ring(ring, IORING_REGISTER_RESTRICTIONS, restrictions.data(),
                                   static_cast<unsigned>(restrictions.size()));
  static std::atomic<bool> said{false};
  if (result < 0 && !said.exchange(true)) {
    log::info("io_uring: rings run unrestricted: the kernel refuses restrictions ({})",
              errno_code(result).message());
  }
  return register_ring(ring, IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
}

int setup_ring(io_uring& ring, std::uint32_t entries) {
  // Try the most helpful flags first, then what older kernels accept.
  const std::array<unsigned, 3> flag_sets = {
      IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
          IORING_SETUP_DEFER_TASKRUN,
      IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
      0,
  };
  int result = -EINVAL;
  for (unsigned flags : flag_sets) {
    io_uring_params params{};
    // Disabled until restricted (restrict_and_enable()).
    params.flags = flags | IORING_SETUP_CQSIZE | IORING_SETUP_R_DISABLED;
    params.cq_entries = entries * 4;
    result = io_uring_queue_init_params(entries, &ring, &params);
    if (result == 0) {
      ring_mapped(ring);
      if ((params.features & IORING_FEAT_NODROP) == 0) {
        ring_unmapping(ring);
        io_uring_queue_exit(&ring);
        return -EOPNOTSUPP;
      }
      return 0;
    }
    if (result != -EINVAL) break;  // EPERM, ENOSYS, ENOMEM: another flag set will not help
  }
  return result;
}

class BufferRing {
 public:
  // Registers a provided-buffer ring with room for `capacity` buffers.
  // Returns -errno on failure (EINVAL before Linux 5.19).
  int setup(io_uring& ring, std::uint32_t capacity) {
    entries_ = std::bit_ceil(std::max<std::uint32_t>(capacity, 1));
    bytes_ = entries_ * sizeof(io_uring_buf);
    void* memory =
        ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (memory == MAP_FAILED) return -errno;
    ring_ = static_cast<io_uring_buf_ring*>(memory);
    io_uring_buf_ring_init(ring_);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uint64_t>(ring_);
    reg.ring_entries = entries_;
    reg.bgid = kBufferGroup;
    int result = io_uring_register_buf_ring(&ring, &reg, 0);
    if (result != 0) {
      release();
      return result;
    }
    return 0;
  }
  void release() noexcept {
    if (ring_ != nullptr) ::munmap(ring_, bytes_);
    ring_ = nullptr;
  }
  void add(std::byte* data, std::uint32_t size, std::uint16_t id) noexcept {
    io_uring_buf_ring_add(ring_, data, size, id, io_uring_buf_ring_mask(entries_), 0);
    io_uring_buf_ring_advance(ring_, 1);
  }
  bool registered() const noexcept { return ring_ != nullptr; }

 private:
  io_uring_buf_ring* ring_ = nullptr;
  std::uint32_t entries_ = 0;
  std::size_t bytes_ = 0;
};

class UringBackend final : public Backend {
 public:
  UringBackend(Loop& loop, const LoopOptions& options, BufferPool& buffers)
      : Backend(loop, buffers) {
    if (int result = setup_ring(ring_, options.ring_entries); result < 0) {
      throw std::system_error(-result, std::system_category(), "io_uring_setup");
    }
    if (int result = buffer_ring_.setup(ring_, buffers_.max()); result < 0) {
      ring_unmapping(ring_);
      io_uring_queue_exit(&ring_);
      throw std::system_error(-result, std::system_category(),
                              "io_uring provided-buffer ring (needs Linux 5.19)");
    }
    // After the buffer ring: no register operation is allowed once enabled.
    if (int result = restrict_and_enable(ring_); result < 0) {
      ring_unmapping(ring_);
      io_uring_queue_exit(&ring_);
      buffer_ring_.release();
      throw std::system_error(-result, std::system_category(), "io_uring: enabling the ring");
    }
    for (std::uint32_t id = 0; id < buffers_.count(); ++id) {
      recycle_buffer(static_cast<std::uint16_t>(id));
    }
  }

  ~UringBackend() override {
    io_uring_submit(&ring_);  // queued closes must not be dropped with the ring
    ring_unmapping(ring_);
    io_uring_queue_exit(&ring_);
    buffer_ring_.release();
  }

  bool start(Operation& op) noexcept override {
    io_uring_sqe* sqe = get_sqe();
    if (sqe == nullptr) {
      // The queue is full even after a submission (the kernel is backed
      // up): a shortage, like a pool with no buffer; the acceptor backs off.
      op.result = -ENOBUFS;
      return true;
    }
    prepare(*sqe, op);
    return false;
  }

  void cancel(Operation& op) noexcept override {
    if (submit_cancel(op)) return;
    // No room in the submission queue even after submitting (the kernel is
    // backed up): keep it, and try again before the next wait. A lost
    // cancel would leave a deadline, or the drain, waiting for ever.
    try {
      pending_cancels_.push_back(&op);
    } catch (const std::bad_alloc&) {
      log::critical("io_uring: out of memory queueing a cancellation");
    }
  }

  void wait(Duration timeout) noexcept override {
    retry_cancels();
    int result;
    if (timeout == Duration::zero()) {
      result = io_uring_submit_and_get_events(&ring_);
    } else if (timeout < Duration::zero()) {
      result = io_uring_submit_and_wait(&ring_, 1);
    } else {
      auto seconds = std::chrono::duration_cast<std::chrono::seconds>(timeout);
      __kernel_timespec ts{};
      ts.tv_sec = seconds.count();
      ts.tv_nsec = (timeout - seconds).count();
      io_uring_cqe* cqe = nullptr;
      result = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    }
    if (result < 0 && result != -ETIME && result != -EINTR && result != -EAGAIN &&
        result != -EBUSY) {
      log::error("io_uring_enter: {}", errno_code(result).message());
    }
    reap();
  }

  void close_fd(int fd) noexcept override {
    io_uring_sqe* sqe = kThreadSanitizer ? nullptr : io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {  // the queue is full: not worth a submission
      ::close(fd);
      return;
    }
    io_uring_prep_close(sqe, fd);
    io_uring_sqe_set_data64(sqe, kIgnored);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  }

  void submit_started() noexcept override {
    if (io_uring_sq_ready(&ring_) > 0) io_uring_submit(&ring_);
  }

  bool buffers_scarce() const noexcept override { return buffers_.scarce(in_ring_); }
  void forget_fd(int) noexcept override {}
  void unwatch_fd(int) noexcept override {}

  void recycle_buffer(std::uint16_t id) noexcept override {
    buffer_ring_.add(buffers_.data(id), buffers_.buffer_size(), id);
    ++in_ring_;
  }

  int socket_flags() const noexcept override { return 0; }

 private:
  bool submit_cancel(Operation& op) noexcept {
    io_uring_sqe* sqe = get_sqe();
    if (sqe == nullptr) return false;
    io_uring_prep_cancel64(sqe, reinterpret_cast<std::uint64_t>(&op), 0);
    io_uring_sqe_set_data64(sqe, kIgnored);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    return true;
  }

  void retry_cancels() noexcept {
    while (!pending_cancels_.empty() && submit_cancel(*pending_cancels_.back())) {
      pending_cancels_.pop_back();
    }
  }

  io_uring_sqe* get_sqe() noexcept {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      // The submission queue is full: hand it to the kernel and retry.
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  void prepare(io_uring_sqe& sqe, Operation& op) noexcept {
    switch (op.code) {
      case OpCode::accept:
        if (op.multishot) {
          io_uring_prep_multishot_accept(&sqe, op.fd, nullptr, nullptr, SOCK_CLOEXEC);
        } else {
          io_uring_prep_accept(&sqe, op.fd, static_cast<sockaddr*>(op.buffer),
                               op.buffer ? &op.length : nullptr, SOCK_CLOEXEC);
        }
        break;
      case OpCode::recv:
        io_uring_prep_recv(&sqe, op.fd, op.buffer, op.length, op.msg_flags);
        break;
      case OpCode::recv_pooled:
        io_uring_prep_recv(&sqe, op.fd, nullptr, std::min(op.length, buffers_.buffer_size()),
                           op.msg_flags);
        sqe.flags |= IOSQE_BUFFER_SELECT;
        sqe.buf_group = kBufferGroup;
        break;
      case OpCode::send:
        io_uring_prep_send(&sqe, op.fd, op.buffer, op.length, op.msg_flags | MSG_NOSIGNAL);
        break;
      case OpCode::connect:
        io_uring_prep_connect(&sqe, op.fd, static_cast<const sockaddr*>(op.buffer), op.length);
        break;
      case OpCode::read:
        io_uring_prep_read(&sqe, op.fd, op.buffer, op.length, ~std::uint64_t{0});
        break;
      case OpCode::sleep:
        io_uring_prep_nop(&sqe);  // the Loop handles sleeps; never reached
        break;
    }
    io_uring_sqe_set_data(&sqe, &op);
  }

  void reap() noexcept {
    struct Done {
      std::uint64_t user_data;
      int result;
      std::uint32_t flags;
    };
    std::array<Done, 256> batch;
    for (;;) {
      unsigned head;
      unsigned count = 0;
      io_uring_cqe* cqe;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        batch[count++] = Done{cqe->user_data, cqe->res, cqe->flags};
        if (count == batch.size()) break;
      }
      if (count == 0) return;
      // Free the CQ slots before running callbacks, which may submit more.
      io_uring_cq_advance(&ring_, count);
      for (unsigned i = 0; i < count; ++i) {
        dispatch(batch[i].user_data, batch[i].result, batch[i].flags);
      }
      if (count < batch.size()) return;
    }
  }

  void dispatch(std::uint64_t user_data, int result, std::uint32_t cqe_flags) noexcept {
    if (user_data == kIgnored) return;
    auto& op = *reinterpret_cast<Operation*>(user_data);
    if (op.code == OpCode::recv_pooled && result == -ENOBUFS && !op.cancel_requested) {
      // Every buffer was lent out when this read ran. Reads that failed in
      // the same batch may find buffers that came back or were added since;
      // otherwise grow the pool. At the cap the read fails with ENOBUFS,
      // and memory stays bounded.
      if (in_ring_ == 0) {
        if (auto added = buffers_.grow()) {
          for (std::uint16_t i = 0; i < added->count; ++i)
            recycle_buffer(added->first + i);
        }
      }
      if (in_ring_ > 0) {
        if (io_uring_sqe* sqe = get_sqe()) {
          prepare(*sqe, op);
          return;
        }
      }
    }
    if (!pending_cancels_.empty() && (cqe_flags & IORING_CQE_F_MORE) == 0) {
      std::erase(pending_cancels_, &op);  // done: its memory may go away now
    }
    op.result = result;
    op.flags = 0;
    if ((cqe_flags & IORING_CQE_F_MORE) != 0) op.flags |= kMoreCompletions;
    if ((cqe_flags & IORING_CQE_F_SOCK_NONEMPTY) != 0) op.flags |= kInputLeft;
    // A single accept wrote the peer's address; a multishot one cannot.
    if (op.code == OpCode::accept && !op.multishot && op.buffer != nullptr && result >= 0)
      op.flags |= kHasPeer;
    if ((cqe_flags & IORING_CQE_F_BUFFER) != 0) {
      --in_ring_;
      op.flags |= kHasBuffer;
      op.buffer_id = static_cast<std::uint16_t>(cqe_flags >> IORING_CQE_BUFFER_SHIFT);
    }
    Engine::complete(loop_, op);
  }

  io_uring ring_{};
  BufferRing buffer_ring_;
  // Buffers the kernel may pick from now.
  std::uint32_t in_ring_ = 0;
  // Cancellations that found no submission slot (see cancel()).
  std::vector<Operation*> pending_cancels_;
};

}  // namespace

std::unique_ptr<Backend> make_uring_backend(Loop& loop, const LoopOptions& options,
                                            BufferPool& buffers) {
  return std::make_unique<UringBackend>(loop, options, buffers);
}

// Sets up a small ring and a provided-buffer ring, as a loop would, and
// reports why io_uring cannot be used here (or an empty string).
std::string probe_io_uring() {
  io_uring ring{};
  int result = setup_ring(ring, 8);
  if (result == -EPERM) {
    return "io_uring is not permitted here (kernel.io_uring_disabled or a seccomp filter)";
  }
  if (result == -ENOSYS) return "the kernel has no io_uring (or a seccomp filter hides it)";
  if (result == -EOPNOTSUPP) return "the kernel's io_uring lacks IORING_FEAT_NODROP (needs 5.5)";
  if (result < 0) return "io_uring_setup failed: " + errno_code(result).message();
  BufferRing buffers;
  result = buffers.setup(ring, 8);
  std::string why;
  if (result < 0) {
    why = "the kernel's io_uring lacks provided-buffer rings (needs Linux 5.19): " +
          errno_code(result).message();
  }
  ring_unmapping(ring);
  io_uring_queue_exit(&ring);
  buffers.release();
  return why;
}

}  // namespace salam::detail
