/* The smallest program a server can run per connection: it writes the
   greeting to its stdout and exits. On x86-64 it is built without the C
   library (bench/exec/run: -nostdlib -static), whose start-up alone asks
   the CPU for its cache sizes with cpuid, which a virtual machine traps:
   what is measured is then the server's cost, not the program's. */
#if defined(__x86_64__)
static long call3(long number, long a, long b, long c) {
  long result;
  __asm__ volatile("syscall"
                   : "=a"(result)
                   : "a"(number), "D"(a), "S"(b), "d"(c)
                   : "rcx", "r11", "memory");
  return result;
}

void _start(void) {
  static const char greeting[] = "Hello, client!";
  const long written = call3(1 /* write */, 1, (long)greeting, sizeof greeting - 1);
  call3(60 /* exit */, written == sizeof greeting - 1 ? 0 : 1, 0, 0);
  for (;;) {
  }
}
#else
#include <unistd.h>

int main(void) {
  static const char greeting[] = "Hello, client!";
  return write(1, greeting, sizeof greeting - 1) == sizeof greeting - 1 ? 0 : 1;
}
#endif
