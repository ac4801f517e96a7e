// The Loop and its backends: sleeps, deadlines, cancellation, posting,
// partial writes and the receive-buffer pool, on io_uring and epoll.
#include <atomic>
#include <chrono>
#include <numeric>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <salam/connection.hpp>
#include <salam/event.hpp>
#include <salam/loop.hpp>

#include "../support/backends.hpp"
#include "../support/socket_pair.hpp"
#include "engine.hpp"

namespace salam {
namespace {

using namespace std::chrono_literals;

class LoopTest : public testing::LoopBackendTest {};

using testing::make_pair;
using testing::Pair;

Task<> sleeper(Loop& loop, Duration duration, int id, std::vector<int>& order) {
  auto error = co_await loop.sleep(duration);
  EXPECT_FALSE(error);
  order.push_back(id);
}

Task<> spawn_sleepers(Loop& loop, std::vector<int>& order) {
  loop.spawn(sleeper(loop, 60ms, 3, order));
  loop.spawn(sleeper(loop, 20ms, 1, order));
  loop.spawn(sleeper(loop, 40ms, 2, order));
  co_return;
}

TEST_P(LoopTest, SleepsEndInDeadlineOrder) {
  Loop loop(options());
  std::vector<int> order;
  auto started = Clock::now();
  loop.run(spawn_sleepers(loop, order));
  auto elapsed = Clock::now() - started;
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  // Tolerance: never early; late by up to 2 s on a loaded machine.
  EXPECT_GE(elapsed, 60ms);
  EXPECT_LT(elapsed, 2s);
}

Task<> read_with_deadline(Connection& connection, std::error_code& error, Duration& waited) {
  auto started = Clock::now();
  auto input = co_await connection.read(1024, 50ms);
  waited = Clock::now() - started;
  error = input ? std::error_code{} : input.error();
  // The connection stays usable after a timeout.
  auto write_error = co_await connection.write_all("still here", 1s);
  EXPECT_FALSE(write_error) << write_error.message();
}

TEST_P(LoopTest, ReadPastItsDeadlineReturnsTimedOut) {
  Loop loop(options());
  Pair pair = make_pair(loop);
  std::error_code error;
  Duration waited{};
  loop.run(read_with_deadline(pair.connection, error, waited));
  EXPECT_EQ(error, timed_out());
  EXPECT_GE(waited, 50ms);
  EXPECT_LT(waited, 2s);
  char reply[32] = {};
  EXPECT_EQ(::recv(pair.peer.get(), reply, sizeof reply, 0), 10);
  EXPECT_STREQ(reply, "still here");
}

Task<> read_all(Connection& connection, std::string& received) {
  for (;;) {
    auto input = co_await connection.read(7, 2s);  // small reads: several per message
    EXPECT_TRUE(input) << input.error().message();
    if (!input || input->empty()) break;
    EXPECT_LE(input->size(), 7u);
    received.append(input->text());
  }
}

TEST_P(LoopTest, ReadReturnsBytesThenEndOfFile) {
  Loop loop(options());
  Pair pair = make_pair(loop);
  const std::string message = "the quick brown fox jumps over the lazy dog";
  ASSERT_EQ(::send(pair.peer.get(), message.data(), message.size(), 0),
            static_cast<ssize_t>(message.size()));
  ::shutdown(pair.peer.get(), SHUT_WR);
  std::string received;
  loop.run(read_all(pair.connection, received));
  EXPECT_EQ(received, message);
  EXPECT_EQ(pair.connection.bytes_in(), message.size());
}

Task<> write_big(Connection& connection, const std::vector<std::byte>& data,
                 std::error_code& error) {
  error = co_await connection.write_all(data, 10s);
  connection.close();
}

TEST_P(LoopTest, WriteAllSendsEverythingThroughPartialWrites) {
  Loop loop(options());
  Pair pair = make_pair(loop);
  std::vector<std::byte> data(8 << 20);
  for (std::size_t i = 0; i < data.size(); ++i)
    data[i] = static_cast<std::byte>(i * 131 % 251);
  // A reader thread that drains slowly enough for the socket buffer to fill.
  std::vector<std::byte> received;
  std::thread reader([&] {
    std::vector<std::byte> chunk(64 * 1024);
    for (;;) {
      ssize_t n = ::recv(pair.peer.get(), chunk.data(), chunk.size(), 0);
      if (n <= 0) break;
      received.insert(received.end(), chunk.begin(), chunk.begin() + n);
    }
  });
  std::error_code error;
  loop.run(write_big(pair.connection, data, error));
  reader.join();
  EXPECT_FALSE(error) << error.message();
  EXPECT_EQ(received.size(), data.size());
  EXPECT_TRUE(received == data);
}

Task<> wait_for(Event& event, bool& woke) {
  woke = co_await event.wait(5s);
}

Task<> post_from_thread(Loop& loop, Event& event, bool& woke, std::thread& other) {
  loop.spawn(wait_for(event, woke));
  other = std::thread([&loop, &event] {
    std::this_thread::sleep_for(20ms);
    loop.post([&event] { event.set(); });
  });
  co_return;
}

TEST_P(LoopTest, PostRunsWorkOnTheLoopThread) {
  Loop loop(options());
  Event event(loop);
  bool woke = false;
  std::thread other;
  auto started = Clock::now();
  loop.run(post_from_thread(loop, event, woke, other));
  other.join();
  EXPECT_TRUE(woke);
  EXPECT_LT(Clock::now() - started, 4s) << "the post did not wake the loop";
}

Task<> read_forever(Connection& connection, std::error_code& error) {
  auto input = co_await connection.read(1024);
  error = input ? std::error_code{} : input.error();
}

Task<> cancel_after(Loop& loop, Duration delay, std::error_code& late_sleep) {
  co_await loop.sleep(delay);
  detail::Engine::cancel_all(loop);
  late_sleep = co_await loop.sleep(10s);  // fails at once: the loop is cancelling
}

Task<> cancel_scenario(Loop& loop, Connection& connection, std::error_code& read_error,
                       std::error_code& late_sleep) {
  loop.spawn(read_forever(connection, read_error));
  loop.spawn(cancel_after(loop, 20ms, late_sleep));
  co_return;
}

TEST_P(LoopTest, CancelAllEndsEveryPendingOperation) {
  Loop loop(options());
  Pair pair = make_pair(loop);
  std::error_code read_error;
  std::error_code late_sleep;
  auto started = Clock::now();
  loop.run(cancel_scenario(loop, pair.connection, read_error, late_sleep));
  EXPECT_EQ(read_error, cancelled());
  EXPECT_EQ(late_sleep, cancelled());
  EXPECT_LT(Clock::now() - started, 5s);
}

Task<> hold_read(Connection& connection, std::vector<InputBuffer>& held,
                 std::vector<std::error_code>& errors) {
  auto input = co_await connection.read(64, 5s);
  if (input) {
    held.push_back(std::move(*input));
  } else {
    errors.push_back(input.error());
  }
}

Task<> read_everywhere(std::vector<Pair>& pairs, std::vector<InputBuffer>& held,
                       std::vector<std::error_code>& errors) {
  for (auto& pair : pairs)
    Loop::current().spawn(hold_read(pair.connection, held, errors));
  co_return;
}

TEST_P(LoopTest, HeldReadsNeverExhaustTheCappedPool) {
  // 130 reads held at once from a pool capped at 128 buffers: the pool
  // grows to its cap, then the engine moves held bytes out of it, so every
  // read succeeds (before, the last two failed with ENOBUFS).
  LoopOptions small = options();
  small.buffer_size = 4096;
  small.buffers_initial = 64;
  small.buffers_max = 128;
  Loop loop(small);
  std::vector<Pair> pairs;
  for (int i = 0; i < 130; ++i) {
    pairs.push_back(make_pair(loop));
    ASSERT_EQ(::send(pairs.back().peer.get(), "x", 1, 0), 1);
  }
  std::vector<InputBuffer> held;
  std::vector<std::error_code> errors;
  loop.run(read_everywhere(pairs, held, errors));
  EXPECT_EQ(held.size(), 130u);
  EXPECT_TRUE(errors.empty()) << errors.front().message();
  held.clear();
}

TEST_P(LoopTest, HeldInputLeavesAScarcePool) {
  // Handlers that hold what they read across a wait (echo, to a client
  // that does not read) must not starve the other connections' reads:
  // once the pool runs short, the engine moves held bytes out of it.
  LoopOptions small = options();
  small.buffer_size = 4096;
  small.buffers_initial = 64;
  small.buffers_max = 64;
  Loop loop(small);
  std::vector<Pair> pairs;
  for (int i = 0; i < 60; ++i) {
    pairs.push_back(make_pair(loop));
    ASSERT_EQ(::send(pairs.back().peer.get(), "x", 1, 0), 1);
  }
  std::vector<InputBuffer> held;
  std::vector<std::error_code> errors;
  loop.run(read_everywhere(pairs, held, errors));
  ASSERT_EQ(held.size(), 60u);
  EXPECT_FALSE(detail::Engine::buffers_scarce(loop)) << "60 reads held, yet buffers are left";
  for (const auto& input : held)
    EXPECT_EQ(input.text(), "x") << "every held read stays readable";
  held.clear();
}

Task<> accept_one(Loop& loop, int listener, int& accepted) {
  detail::Operation op;  // a raw single accept, as a backend test
  struct Awaiter {
    Loop& loop;
    detail::Operation& op;
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> handle) noexcept {
      op.waiter = handle;
      op.on_complete = [](detail::Operation& o) { o.waiter.resume(); };
      return !detail::Engine::start(loop, op, 5s);
    }
    int await_resume() const noexcept { return op.result; }
  };
  op.code = detail::OpCode::accept;
  op.fd = listener;
  __atomic_store_n(&accepted, co_await Awaiter{loop, op}, __ATOMIC_RELEASE);
}

Task<> connect_and_greet(Loop& loop, SocketAddress target, std::string& reply) {
  auto connection = co_await connect(loop, target, 5s);
  EXPECT_TRUE(connection) << connection.error().message();
  if (!connection) co_return;
  EXPECT_FALSE(co_await connection->write_all("ping", 5s));
  auto input = co_await connection->read(100, 5s);
  EXPECT_TRUE(input);
  if (input) reply = std::string(input->text());
}

Task<> accept_and_connect(Loop& loop, int listener, SocketAddress target, int& accepted,
                          std::string& reply) {
  loop.spawn(accept_one(loop, listener, accepted));
  loop.spawn(connect_and_greet(loop, target, reply));
  co_return;
}

TEST_P(LoopTest, AcceptAndConnect) {
  Loop loop(options());
  FileDescriptor listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  auto address = SocketAddress::parse("127.0.0.1:0");
  ASSERT_EQ(::bind(listener.get(), address.data(), address.size()), 0);
  ASSERT_EQ(::listen(listener.get(), 16), 0);
  socklen_t length = sizeof(sockaddr_in);
  ASSERT_EQ(::getsockname(listener.get(), address.data(), &length), 0);

  // The accepted side answers from a thread once the loop has accepted.
  int accepted = -1;
  std::string reply;
  std::thread answer([&accepted] {
    for (int i = 0; i < 500 && __atomic_load_n(&accepted, __ATOMIC_ACQUIRE) < 0; ++i) {
      std::this_thread::sleep_for(10ms);
    }
    int fd = __atomic_load_n(&accepted, __ATOMIC_ACQUIRE);
    if (fd < 0) return;
    char request[16] = {};
    ::recv(fd, request, sizeof request, 0);
    ::send(fd, "pong", 4, MSG_NOSIGNAL);
  });
  loop.run(accept_and_connect(loop, listener.get(), address, accepted, reply));
  answer.join();
  ASSERT_GE(accepted, 0);
  ::close(accepted);
  EXPECT_EQ(reply, "pong");
}

Task<> connect_refused(Loop& loop, SocketAddress target, std::error_code& error) {
  auto connection = co_await connect(loop, target, 5s);
  error = connection ? std::error_code{} : connection.error();
}

TEST_P(LoopTest, ConnectToAClosedPortFails) {
  Loop loop(options());
  // Find a port nobody listens on: bind, read the port, close.
  FileDescriptor probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  auto address = SocketAddress::parse("127.0.0.1:0");
  ASSERT_EQ(::bind(probe.get(), address.data(), address.size()), 0);
  socklen_t length = sizeof(sockaddr_in);
  ASSERT_EQ(::getsockname(probe.get(), address.data(), &length), 0);
  probe.reset();
  std::error_code error;
  loop.run(connect_refused(loop, address, error));
  EXPECT_EQ(error, std::make_error_code(std::errc::connection_refused));
}

Task<> read_until_shut(Connection& connection, bool& saw_end) {
  auto input = co_await connection.read(1024, 5s);
  saw_end = input && input->empty();
}

Task<> shut_reading_later(Connection& connection) {
  co_await connection.loop().sleep(20ms);
  EXPECT_FALSE(connection.shutdown_read());
}

Task<> read_and_shut(Connection& connection, bool& saw_end) {
  Loop::current().spawn(read_until_shut(connection, saw_end));
  Loop::current().spawn(shut_reading_later(connection));
  co_return;
}

Task<> read_three(Connection& connection, std::vector<std::string>& reads) {
  for (int i = 0; i < 3; ++i) {
    auto input = co_await connection.read(4, 2s);
    EXPECT_TRUE(input);
    if (!input) co_return;
    reads.emplace_back(input->text());
  }
}

TEST_P(LoopTest, HandedBackBytesAreReadFirst) {
  Loop loop(options());
  Pair pair = make_pair(loop);
  ASSERT_EQ(::send(pair.peer.get(), "new", 3, 0), 3);
  const std::string early = "abcdef";
  pair.connection.unread(std::as_bytes(std::span(early.data(), early.size())));
  EXPECT_TRUE(pair.connection.has_unread());
  std::vector<std::string> reads;
  loop.run(read_three(pair.connection, reads));
  EXPECT_EQ(reads, (std::vector<std::string>{"abcd", "ef", "new"}));
  EXPECT_FALSE(pair.connection.has_unread());
}

Task<> read_until_error(Connection& connection, std::error_code& error, std::size_t& reads) {
  for (;;) {
    auto input = co_await connection.read(1024, 10s);
    if (!input) {
      error = input.error();
      co_return;
    }
    if (input->empty()) co_return;
    ++reads;
  }
}

TEST_P(LoopTest, TheLifetimeCapEndsAnyOperation) {
  Loop loop(options());
  Pair pair = make_pair(loop);
  const auto started = Clock::now();  // before the cap's own clock starts
  pair.connection.set_lifetime(100ms);
  std::error_code error;
  std::size_t reads = 0;
  loop.run(read_until_error(pair.connection, error, reads));
  EXPECT_EQ(error, timed_out());
  EXPECT_EQ(pair.connection.expiry(), Connection::Expiry::lifetime);
  EXPECT_GE(Clock::now() - started, 100ms);
  EXPECT_LT(Clock::now() - started, 5s) << "the read's own 10 s deadline, not the cap, ended it";
}

TEST_P(LoopTest, TheMinimumRateCapEndsATrickle) {
  // 1 byte every 50 ms is 20 B/s; the minimum is 200 B/s after 200 ms.
  Loop loop(options());
  Pair pair = make_pair(loop);
  const auto started = Clock::now();  // before the cap's own clock starts
  pair.connection.set_minimum_rate(200, 200ms);
  std::atomic<bool> stop = false;
  ASSERT_EQ(::send(pair.peer.get(), "x", 1, MSG_NOSIGNAL), 1);  // one byte, however late the thread
  std::thread trickle([&] {
    for (int i = 0; i < 100 && !stop; ++i) {
      if (::send(pair.peer.get(), "x", 1, MSG_NOSIGNAL) != 1) break;
      std::this_thread::sleep_for(50ms);
    }
  });
  std::error_code error;
  std::size_t reads = 0;
  loop.run(read_until_error(pair.connection, error, reads));
  stop = true;
  trickle.join();
  EXPECT_EQ(error, timed_out());
  EXPECT_EQ(pair.connection.expiry(), Connection::Expiry::rate);
  EXPECT_GE(reads, 1u) << "the bytes that did come were read";
  EXPECT_GE(Clock::now() - started, 200ms) << "not before the grace period ends";
  EXPECT_LT(Clock::now() - started, 4s);
}

TEST_P(LoopTest, ShutdownReadEndsAPendingReadWithEndOfFile) {
  // This is how one task of a connection stops another's read.
  Loop loop(options());
  FileDescriptor listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  auto address = SocketAddress::parse("127.0.0.1:0");
  ASSERT_EQ(::bind(listener.get(), address.data(), address.size()), 0);
  ASSERT_EQ(::listen(listener.get(), 4), 0);
  socklen_t length = sizeof(sockaddr_in);
  ASSERT_EQ(::getsockname(listener.get(), address.data(), &length), 0);
  FileDescriptor client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::connect(client.get(), address.data(), address.size()), 0);
  int accepted = ::accept4(listener.get(), nullptr, nullptr,
                           SOCK_CLOEXEC | detail::Engine::socket_flags(loop));
  ASSERT_GE(accepted, 0);
  Connection connection(loop, FileDescriptor(accepted));
  bool saw_end = false;
  const auto started = Clock::now();
  loop.run(read_and_shut(connection, saw_end));
  EXPECT_TRUE(saw_end);
  EXPECT_LT(Clock::now() - started, 4s) << "the read waited for its deadline instead";
}

SALAM_INSTANTIATE_FOR_BACKENDS(LoopTest);

}  // namespace
}  // namespace salam
