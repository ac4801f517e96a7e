// time (RFC 868): seconds since 1900-01-01 00:00 UTC as a 32-bit
// big-endian number, then close. The count wraps in 2036, as the RFC's
// 32 bits do; clients are expected to handle the era.
#include <array>
#include <cstdint>
#include <ctime>

#include "service.hpp"

namespace salam::daemon {

namespace {
constexpr std::int64_t kSeconds1900To1970 = 2'208'988'800;
}

Task<Ending> serve_time(Connection& client, const ServiceOptions& options,
                        const SessionFacts& /*facts*/) {
  const auto since_1900 = static_cast<std::uint32_t>(
      (static_cast<std::int64_t>(std::time(nullptr)) + kSeconds1900To1970) & 0xffffffff);
  const std::array<char, 4> bytes = {
      static_cast<char>(since_1900 >> 24), static_cast<char>(since_1900 >> 16),
      static_cast<char>(since_1900 >> 8), static_cast<char>(since_1900)};
  co_return co_await send_reply(client, std::string_view(bytes.data(), bytes.size()),
                                options.write_timeout);
}

}  // namespace salam::daemon
