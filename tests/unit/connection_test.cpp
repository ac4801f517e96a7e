// Connection's contracts on both backends: close() is a request that ends
// what is in flight, overlapping operations and operations on a closed
// connection fail clearly, and misuse that would corrupt memory ends the
// process with a message, in release builds too.
#include <chrono>
#include <optional>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <salam/connection.hpp>
#include <salam/loop.hpp>
#include <salam/scope.hpp>

#include "../support/backends.hpp"
#include "../support/socket_pair.hpp"

namespace salam {
namespace {

using namespace std::chrono_literals;
using testing::make_pair;

class ConnectionTest : public testing::LoopBackendTest {};

// True if `fd` reads end of file within `limit` (a FIN arrived).
bool sees_eof_within(int fd, Duration limit) {
  pollfd poll_fd{fd, POLLIN, 0};
  const int ms =
      static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(limit).count());
  if (::poll(&poll_fd, 1, ms) != 1) return false;
  char byte;
  return ::recv(fd, &byte, 1, MSG_DONTWAIT) == 0;
}

Task<> read_once(Connection& connection, std::error_code& error) {
  auto input = co_await connection.read(1024);
  error = input ? std::error_code{} : input.error();
}

Task<> close_soon(Connection& connection, int peer, bool& fin_at_once) {
  co_await connection.loop().sleep(20ms);
  connection.close();
  // Tolerance: the FIN must be out well before the read would have been
  // cancelled by anything else (there is no deadline at all).
  fin_at_once = sees_eof_within(peer, 1s);
}

Task<> read_and_close(Connection& connection, int peer, std::error_code& error, bool& fin) {
  TaskScope both;
  both.spawn(read_once(connection, error));
  both.spawn(close_soon(connection, peer, fin));
  co_await both.join();
}

TEST_P(ConnectionTest, CloseCancelsAWaitingReadAndSendsTheFinAtOnce) {
  Loop loop(options());
  auto pair = make_pair(loop);
  std::error_code error;
  bool fin = false;
  const TimePoint started = Clock::now();
  loop.run(read_and_close(pair.connection, pair.peer.get(), error, fin));
  EXPECT_EQ(error, cancelled()) << error.message();
  EXPECT_TRUE(fin) << "the peer saw no FIN within 1 s of close()";
  EXPECT_LT(Clock::now() - started, 2s);
  EXPECT_FALSE(pair.connection.is_open());
}

Task<> read_twice(Connection& connection, int peer, std::error_code& first,
                  std::error_code& second) {
  TaskScope both;
  both.spawn(read_once(connection, first));
  // The first read is in flight now: a second one must be refused, not
  // crash (io_uring) or silently replace the first (epoll).
  auto input = co_await connection.read(1024);
  second = input ? std::error_code{} : input.error();
  ::send(peer, "x", 1, 0);
  co_await both.join();
}

TEST_P(ConnectionTest, ASecondReadInFlightFailsWithBusy) {
  Loop loop(options());
  auto pair = make_pair(loop);
  std::error_code first;
  std::error_code second;
  loop.run(read_twice(pair.connection, pair.peer.get(), first, second));
  EXPECT_EQ(second, busy()) << second.message();
  EXPECT_FALSE(first) << "the first read still gets its byte: " << first.message();
}

Task<> write_big(Connection& connection, std::error_code& error) {
  // More than the socket buffers hold: the write waits for the peer.
  static const std::vector<std::byte> big(8 * 1024 * 1024);
  error = co_await connection.write_all(big, 2s);
}

Task<> write_while_writing(Connection& connection, std::error_code& first,
                           std::error_code& second) {
  TaskScope both;
  both.spawn(write_big(connection, first));
  second = co_await connection.write_all("y");
  connection.close();  // ends the first write, with cancelled()
  co_await both.join();
}

TEST_P(ConnectionTest, ASecondWriteInFlightFailsWithBusy) {
  Loop loop(options());
  auto pair = make_pair(loop);
  std::error_code first;
  std::error_code second;
  loop.run(write_while_writing(pair.connection, first, second));
  EXPECT_EQ(second, busy()) << second.message();
  EXPECT_EQ(first, cancelled()) << first.message();
}

Task<> use_after_close(Connection& connection, std::error_code& read, std::error_code& write) {
  connection.close();
  auto input = co_await connection.read(16);
  read = input ? std::error_code{} : input.error();
  write = co_await connection.write_all("late");
}

TEST_P(ConnectionTest, OperationsOnAClosedConnectionFailWithNotConnected) {
  Loop loop(options());
  auto pair = make_pair(loop);
  std::error_code read;
  std::error_code write;
  loop.run(use_after_close(pair.connection, read, write));
  EXPECT_EQ(read, not_connected());
  EXPECT_EQ(write, not_connected());
  EXPECT_EQ(pair.connection.shutdown_write(), not_connected());
}

// Lingering close over TCP (a Unix socket never resets) is checked by
// ServerTest.ReplySurvivesUnreadInput.

// --- contracts that end the process, in every build type ---

using ConnectionDeathTest = ConnectionTest;

TEST(ContractDeathTest, ValueOfAnErrorEndsTheProcess) {
  Result<int> failed(timed_out());
  EXPECT_DEATH((void)failed.value(), "contract violated: Result::value\\(\\) called on a Result");
}

TEST(ContractDeathTest, DestroyingATaskScopeWithTasksRunningEndsTheProcess) {
  EXPECT_DEATH(
      {
        Loop loop;
        auto scope = std::make_unique<TaskScope>();
        loop.run([](Loop& l, std::unique_ptr<TaskScope>& s) -> Task<> {
          s->spawn([](Loop& inner) -> Task<> { co_await inner.sleep(10s); }(l));
          s.reset();
          co_return;
        }(loop, scope));
      },
      "contract violated: a TaskScope was destroyed with tasks still running");
}

TEST(ContractDeathTest, LoopCurrentOutsideALoopEndsTheProcess) {
  EXPECT_DEATH((void)Loop::current(), "contract violated: Loop::current\\(\\) called outside");
}

TEST_P(ConnectionDeathTest, DestroyingAConnectionUnderAReadEndsTheProcess) {
  const BackendKind backend = GetParam();
  EXPECT_DEATH(
      {
        LoopOptions options;
        options.backend = backend;
        Loop loop(options);
        auto pair = make_pair(loop);  // the peer stays open: the read waits
        std::optional<Connection> connection(std::move(pair.connection));
        loop.run([](std::optional<Connection>& c) -> Task<> {
          TaskScope reader;
          std::error_code error;
          reader.spawn(read_once(*c, error));
          c.reset();  // the read is in flight
          co_await reader.join();
        }(connection));
      },
      "contract violated: a Connection was destroyed while an operation on it was in flight");
}

SALAM_INSTANTIATE_FOR_BACKENDS(ConnectionTest);
SALAM_INSTANTIATE_FOR_BACKENDS(ConnectionDeathTest);

}  // namespace
}  // namespace salam
