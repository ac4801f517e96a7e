// Coroutine frames, recycled per thread.
//
// A connection's coroutines (session, service, read helpers) each allocate
// a frame when they start and free it when they end, so a short connection
// costs several trips to the heap. A frame is allocated and freed on the
// thread of the shard that runs it, so each thread keeps lists of freed
// frames by size class and hands them out again: no lock, no atomic, and
// after warm-up no heap allocation per connection.
//
// Bounds: frames above kLargest bytes go to the heap; each class keeps at
// most kCachedBytes of free frames, the rest go back to the heap. A frame
// freed on another thread than the one that made it is simply kept by that
// thread. Under AddressSanitizer or ThreadSanitizer frames are not
// recycled, so that a use after free is still caught.
#include <cstddef>
#include <new>

#include <salam/task.hpp>

#include "sanitizers.hpp"

namespace salam::detail {

namespace {

constexpr bool kRecycle = !kSanitized;

constexpr std::size_t kGranule = 64;
constexpr std::size_t kLargest = 2048;
constexpr std::size_t kClasses = kLargest / kGranule;
constexpr std::size_t kCachedBytes = 256 * 1024;

struct FreeFrame {
  FreeFrame* next;
};

class FrameCache {
 public:
  FrameCache() noexcept = default;
  FrameCache(const FrameCache&) = delete;
  FrameCache& operator=(const FrameCache&) = delete;
  ~FrameCache() {
    gone_ = true;
    for (std::size_t index = 0; index < kClasses; ++index) {
      while (FreeFrame* frame = lists_[index]) {
        lists_[index] = frame->next;
        ::operator delete(frame);
      }
    }
  }

  // Frames freed during this thread's exit, after the cache is gone, go
  // straight to the heap. (A trivially destructible flag, valid to the end.)
  static bool gone() noexcept { return gone_; }

  void* take(std::size_t index) noexcept {
    FreeFrame* frame = lists_[index];
    if (frame == nullptr) return nullptr;
    lists_[index] = frame->next;
    --counts_[index];
    return frame;
  }

  bool keep(void* memory, std::size_t index) noexcept {
    if ((counts_[index] + 1) * (index + 1) * kGranule > kCachedBytes) return false;
    auto* frame = static_cast<FreeFrame*>(memory);
    frame->next = lists_[index];
    lists_[index] = frame;
    ++counts_[index];
    return true;
  }

 private:
  static thread_local bool gone_;
  FreeFrame* lists_[kClasses] = {};
  std::size_t counts_[kClasses] = {};
};

thread_local bool FrameCache::gone_ = false;
thread_local FrameCache cache;

std::size_t class_of(std::size_t size) noexcept {
  return (size + kGranule - 1) / kGranule - 1;
}

}  // namespace

void* allocate_frame(std::size_t size) {
  if (!kRecycle || size > kLargest) return ::operator new(size);
  const std::size_t index = class_of(size);
  if (!FrameCache::gone()) {
    if (void* frame = cache.take(index)) return frame;  // the first use constructs the cache
  }
  return ::operator new((index + 1) * kGranule);
}

void free_frame(void* frame, std::size_t size) noexcept {
  if (!kRecycle || size > kLargest) {
    ::operator delete(frame);
    return;
  }
  if (!FrameCache::gone() && cache.keep(frame, class_of(size))) return;
  ::operator delete(frame);
}

}  // namespace salam::detail
