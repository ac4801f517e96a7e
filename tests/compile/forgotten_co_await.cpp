// Compiled by check_nodiscard.cmake: as it is, it must compile cleanly;
// with FORGET set to one of the cases below, the forgotten co_await must be
// a warning (an error under -Werror), never silently nothing.
#include <salam/salam.hpp>

using namespace std::chrono_literals;

salam::Task<int> answer() {
  co_return 42;
}

#ifndef FORGET
#define FORGET 0
#endif

salam::Task<> handler(salam::Connection client, salam::Event& event, salam::TaskScope& scope,
                      salam::ShardContext shard) {
  auto& loop = client.loop();
  if constexpr (FORGET == 1) client.read(16);
  if constexpr (FORGET == 2) client.write_all("x");
  if constexpr (FORGET == 3) loop.sleep(1s);
  if constexpr (FORGET == 4) salam::connect(loop, client.peer());
  if constexpr (FORGET == 5) event.wait();
  if constexpr (FORGET == 6) scope.join();
  if constexpr (FORGET == 7) answer();
  if constexpr (FORGET == 8) shard.wait_for_stop(1s);
  if constexpr (FORGET == 9) client.read_some({});
  auto input = co_await client.read(16);
  if (!input) co_return;
  std::error_code error = co_await client.write_all("x");
  if (error) co_return;
  error = co_await loop.sleep(1s);
  auto outbound = co_await salam::connect(loop, client.peer());
  if (!outbound) co_return;
  bool set = co_await event.wait();
  if (set) co_await scope.join();
  int value = co_await answer();
  if (value == 0) co_return;
  bool stopping = co_await shard.wait_for_stop(1s);
  (void)stopping;
}
