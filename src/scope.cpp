#include <exception>

#include <salam/log.hpp>
#include <salam/scope.hpp>

namespace salam::detail {

void report_unhandled_task_exception(const std::exception_ptr& error) noexcept {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    log::error("task failed: {}", e.what());
  } catch (...) {
    log::error("task failed with a non-standard exception");
  }
}

}  // namespace salam::detail
