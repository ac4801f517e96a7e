// BufferedWriter on io_uring and epoll: appends gathered into one send,
// memory given back after a flush, and failed or late flushes.
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <salam/buffered_writer.hpp>
#include <salam/connection.hpp>
#include <salam/loop.hpp>

#include "../support/backends.hpp"
#include "../support/clients.hpp"
#include "../support/loopback.hpp"
#include "engine.hpp"

namespace salam {
namespace {

using namespace std::chrono_literals;
using testing::loopback_pair;
using testing::LoopbackPair;

class BufferedWriterTest : public testing::LoopBackendTest {};

// Appends `parts`, checks that nothing went out, then flushes.
Task<> append_and_flush(BufferedWriter& writer, Connection& connection,
                        std::vector<std::string> parts, Duration deadline, std::error_code& error) {
  std::size_t total = writer.pending();
  for (const std::string& part : parts) {
    writer.append(part);
    total += part.size();
  }
  EXPECT_EQ(writer.pending(), total);
  EXPECT_EQ(connection.bytes_out(), 0u) << "appending wrote by itself";
  error = co_await writer.flush(deadline);
}

std::vector<std::string> numbered_parts(int count) {
  std::vector<std::string> parts;
  for (int i = 0; i < count; ++i)
    parts.push_back("part " + std::to_string(i) + ";");
  return parts;
}

std::string joined(const std::vector<std::string>& parts) {
  std::string all;
  for (const std::string& part : parts)
    all += part;
  return all;
}

TEST_P(BufferedWriterTest, AppendsGoOutInOneSend) {
  Loop loop(options());
  auto made = local_pair(loop, SOCK_SEQPACKET);
  ASSERT_TRUE(made);
  LocalPair& pair = *made;
  BufferedWriter writer(pair.here);
  const auto parts = numbered_parts(100);
  const std::string expected = joined(parts);
  std::error_code error;
  loop.run(append_and_flush(writer, pair.here, parts, 5s, error));
  EXPECT_FALSE(error) << error.message();
  EXPECT_EQ(writer.pending(), 0u);
  EXPECT_EQ(pair.here.bytes_out(), expected.size());
  // One send is one packet: the first receive takes every byte, in order,
  // and nothing is left.
  std::string packet(64 * 1024, '\0');
  const ssize_t received = ::recv(pair.there.get(), packet.data(), packet.size(), MSG_DONTWAIT);
  ASSERT_GT(received, 0);
  packet.resize(static_cast<std::size_t>(received));
  EXPECT_EQ(packet, expected);
  char more;
  EXPECT_EQ(::recv(pair.there.get(), &more, 1, MSG_DONTWAIT), -1) << "a second send was made";
}

TEST_P(BufferedWriterTest, ManyAppendsArriveInOrderOverTcp) {
  Loop loop(options());
  LoopbackPair pair = loopback_pair(loop);
  BufferedWriter writer(pair.connection);
  // 2 MiB, more than the socket buffers hold: the one write_all goes out
  // through partial sends while the peer reads.
  const auto parts = numbered_parts(150'000);
  const std::string expected = joined(parts);
  std::string received;
  std::thread reader([&] { received = testing::read_until_eof(pair.peer.get()); });
  std::error_code error;
  loop.run(append_and_flush(writer, pair.connection, parts, 10s, error));
  pair.connection.close();
  reader.join();
  EXPECT_FALSE(error) << error.message();
  EXPECT_EQ(pair.connection.bytes_out(), expected.size());
  EXPECT_EQ(received.size(), expected.size());
  EXPECT_TRUE(received == expected);
}

TEST_P(BufferedWriterTest, AfterAFlushTheWriterHoldsNoMemory) {
  Loop loop(options());
  auto made = local_pair(loop, SOCK_STREAM);
  ASSERT_TRUE(made);
  LocalPair& pair = *made;
  BufferedWriter writer(pair.here);
  writer.append("PONG\n");
  EXPECT_FALSE(writer.holds_memory()) << "a short reply fits in the writer itself";
  const std::vector<std::string> parts{std::string(1000, 'x')};
  std::error_code error;
  loop.run(append_and_flush(writer, pair.here, parts, 5s, error));
  EXPECT_FALSE(error) << error.message();
  EXPECT_EQ(writer.pending(), 0u);
  EXPECT_FALSE(writer.holds_memory());
  EXPECT_EQ(pair.here.bytes_out(), 1005u);
}

TEST_P(BufferedWriterTest, AppendsBytesAsWellAsText) {
  Loop loop(options());
  auto made = local_pair(loop, SOCK_STREAM);
  ASSERT_TRUE(made);
  LocalPair& pair = *made;
  BufferedWriter writer(pair.here);
  const std::byte binary[] = {std::byte{0}, std::byte{0xff}, std::byte{'\n'}};
  writer.append(binary);
  std::error_code error;
  loop.run(append_and_flush(writer, pair.here, {"text"}, 5s, error));
  EXPECT_FALSE(error) << error.message();
  char received[8] = {};
  ASSERT_EQ(::recv(pair.there.get(), received, sizeof received, 0), 7);
  EXPECT_EQ(std::string(received, 7), std::string("\0\xff\ntext", 7));
}

TEST_P(BufferedWriterTest, AFlushWithNothingPendingSendsNothing) {
  Loop loop(options());
  auto made = local_pair(loop, SOCK_SEQPACKET);
  ASSERT_TRUE(made);
  LocalPair& pair = *made;
  BufferedWriter writer(pair.here);
  std::error_code error = std::make_error_code(std::errc::io_error);
  loop.run(append_and_flush(writer, pair.here, {}, 5s, error));
  EXPECT_FALSE(error) << error.message();
  EXPECT_EQ(pair.here.bytes_out(), 0u);
  char packet;
  EXPECT_EQ(::recv(pair.there.get(), &packet, 1, MSG_DONTWAIT), -1) << "an empty packet was sent";
}

TEST_P(BufferedWriterTest, AFailedFlushReturnsTheErrorAndDropsItsBytes) {
  Loop loop(options());
  auto made = local_pair(loop, SOCK_STREAM);
  ASSERT_TRUE(made);
  LocalPair& pair = *made;
  BufferedWriter writer(pair.here);
  pair.there.reset();
  std::error_code error;
  loop.run(append_and_flush(writer, pair.here, {"nobody reads this"}, 5s, error));
  EXPECT_EQ(error, std::make_error_code(std::errc::broken_pipe));
  EXPECT_EQ(writer.pending(), 0u);
  EXPECT_FALSE(writer.holds_memory());
}

TEST_P(BufferedWriterTest, AFlushPastItsDeadlineReturnsTimedOut) {
  Loop loop(options());
  auto made = local_pair(loop, SOCK_STREAM);
  ASSERT_TRUE(made);
  LocalPair& pair = *made;
  BufferedWriter writer(pair.here);
  // The peer reads nothing: 8 MiB cannot all fit in the socket buffers.
  const std::vector<std::string> parts{std::string(8 << 20, 'x')};
  std::error_code error;
  const auto started = Clock::now();
  loop.run(append_and_flush(writer, pair.here, parts, 100ms, error));
  const auto waited = Clock::now() - started;
  EXPECT_EQ(error, timed_out());
  // Tolerance: never early; late by up to 2 s on a loaded machine.
  EXPECT_GE(waited, 100ms);
  EXPECT_LT(waited, 2s);
  EXPECT_EQ(writer.pending(), 0u);
  EXPECT_LT(pair.here.bytes_out(), parts[0].size());
}

Task<> flush_once(BufferedWriter& writer, std::error_code& error, bool& done) {
  error = co_await writer.flush(10s);
  done = true;
}

Task<> flush_twice(BufferedWriter& writer, Connection& connection, std::string first,
                   std::atomic<bool>& appended, std::size_t& pending_meanwhile,
                   std::error_code& error) {
  writer.append(first);
  bool done = false;
  // Runs until the socket buffer is full; append then.
  Loop::current().spawn(flush_once(writer, error, done));
  EXPECT_FALSE(done) << "4 MiB went out at once: the test shows nothing";
  writer.append("tail");
  pending_meanwhile = writer.pending();
  appended = true;  // the peer starts reading
  for (int i = 0; i < 10'000 && !done; ++i)
    co_await connection.loop().sleep(1ms);
  if (done && !error) error = co_await writer.flush(10s);
  connection.close();
}

TEST_P(BufferedWriterTest, AppendsDuringAFlushGoOutWithTheNext) {
  Loop loop(options());
  auto made = local_pair(loop, SOCK_STREAM);
  ASSERT_TRUE(made);
  LocalPair& pair = *made;
  BufferedWriter writer(pair.here);
  const std::string first(4 << 20, 'x');
  std::string received;
  std::atomic<bool> appended = false;
  std::thread reader([&] {
    for (int i = 0; i < 5000 && !appended; ++i)
      std::this_thread::sleep_for(1ms);
    received = testing::read_until_eof(pair.there.get());
  });
  std::size_t pending_meanwhile = 0;
  std::error_code error;
  loop.run(flush_twice(writer, pair.here, first, appended, pending_meanwhile, error));
  reader.join();
  EXPECT_FALSE(error) << error.message();
  EXPECT_EQ(pending_meanwhile, 4u) << "only the bytes appended after the flush began";
  EXPECT_EQ(received.size(), first.size() + 4);
  EXPECT_TRUE(received == first + "tail");
}

SALAM_INSTANTIATE_FOR_BACKENDS(BufferedWriterTest);

}  // namespace
}  // namespace salam
