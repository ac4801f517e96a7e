// An LD_PRELOAD shim that counts the heap allocations made on salam's
// shard threads (those named salam-shard-N), for bench/count-allocations.
// At exit it writes "shard_allocations N" to the file named by
// SALAM_ALLOC_REPORT. It forwards to glibc's own allocator entry points.
#include <atomic>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

extern "C" {
void* __libc_malloc(std::size_t size);
void* __libc_calloc(std::size_t count, std::size_t size);
void* __libc_realloc(void* memory, std::size_t size);
void* __libc_memalign(std::size_t alignment, std::size_t size);
}

namespace {

std::atomic<unsigned long> shard_allocations{0};
thread_local bool on_shard = false;  // once true, a thread stays a shard

void count() noexcept {
  if (!on_shard) {
    // Shard threads are named just after they start; ask until then.
    char name[16] = {};
    if (::prctl(PR_GET_NAME, name) != 0 || std::strncmp(name, "salam-shard-", 12) != 0) return;
    on_shard = true;
  }
  shard_allocations.fetch_add(1, std::memory_order_relaxed);
}

__attribute__((destructor)) void report() {
  const char* path = std::getenv("SALAM_ALLOC_REPORT");
  if (path == nullptr) return;
  char line[64];
  const int length =
      std::snprintf(line, sizeof line, "shard_allocations %lu\n", shard_allocations.load());
  const int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  [[maybe_unused]] auto written = ::write(fd, line, static_cast<std::size_t>(length));
  ::close(fd);
}

}  // namespace

extern "C" {

void* malloc(std::size_t size) {
  count();
  return __libc_malloc(size);
}

void* calloc(std::size_t count_of, std::size_t size) {
  count();
  return __libc_calloc(count_of, size);
}

void* realloc(void* memory, std::size_t size) {
  count();
  return __libc_realloc(memory, size);
}

void* memalign(std::size_t alignment, std::size_t size) {
  count();
  return __libc_memalign(alignment, size);
}

void* aligned_alloc(std::size_t alignment, std::size_t size) {
  count();
  return __libc_memalign(alignment, size);
}

int posix_memalign(void** memory, std::size_t alignment, std::size_t size) {
  count();
  *memory = __libc_memalign(alignment, size);
  return *memory != nullptr ? 0 : 12;  // ENOMEM
}

}  // extern "C"
