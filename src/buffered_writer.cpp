#include <string>
#include <utility>

#include <salam/buffered_writer.hpp>

namespace salam {

Task<std::error_code> BufferedWriter::flush(Deadline deadline) {
  if (pending_.empty()) co_return std::error_code{};
  // Swapped out rather than moved from (whose capacity the standard leaves
  // unspecified): the writer is left with no heap memory, and free for
  // appends made while these bytes are on their way.
  std::string sending;
  sending.swap(pending_);
  co_return co_await connection_->write_all(sending, deadline);
}

}  // namespace salam
