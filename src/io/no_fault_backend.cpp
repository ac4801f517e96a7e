// Built when SALAM_FAULT_INJECTION is off (a packager's build): there is
// no fault-injection seam, and SALAM_FAULTS is not read.
#include "io/backend.hpp"

namespace salam::detail {

std::unique_ptr<Backend> inject_faults(Loop&, std::unique_ptr<Backend> backend, TimerHeap&) {
  return backend;
}

}  // namespace salam::detail
