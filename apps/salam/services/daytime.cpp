// daytime (RFC 867): the date and time as one line of text, then close.
// The RFC fixes no syntax; this follows its example,
// "Weekday, Month Day, Year HH:MM:SS-ZONE", in UTC.
#include <array>
#include <ctime>

#include "service.hpp"

namespace salam::daemon {

Task<Ending> serve_daytime(Connection& client, const ServiceOptions& options,
                           const SessionFacts& /*facts*/) {
  std::time_t now = std::time(nullptr);
  std::tm parts{};
  ::gmtime_r(&now, &parts);
  std::array<char, 64> text{};
  std::size_t length =
      std::strftime(text.data(), text.size(), "%A, %B %d, %Y %H:%M:%S-UTC\r\n", &parts);
  co_return co_await send_reply(client, std::string_view(text.data(), length),
                                options.write_timeout);
}

}  // namespace salam::daemon
