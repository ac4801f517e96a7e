// Built without SALAM_TEST_HOOKS (a packager's build): SALAM_TEST_PROBE is
// not read.
#include "sandbox/sandbox.hpp"

namespace salam::daemon {

void run_test_probe() noexcept {}

}  // namespace salam::daemon
