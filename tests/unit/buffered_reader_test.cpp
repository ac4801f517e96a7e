// BufferedReader on io_uring and epoll, over real loopback sockets: lines,
// pipelined and split input, the length cap and its memory bound, end of
// file, exact reads, deadlines, cancellation, and what an idle reader holds.
#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <salam/buffered_reader.hpp>
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
using testing::send_all;

class BufferedReaderTest : public testing::LoopBackendTest {};

std::string text_of(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// What a run of read_until calls saw: the lines, then the error that ended it.
struct Lines {
  std::vector<std::string> lines;
  std::error_code error;
  bool done = false;
};

// `bytes` cut into pieces of `size`.
std::vector<std::string> pieces_of(std::string_view bytes, std::size_t size) {
  std::vector<std::string> pieces;
  for (std::size_t at = 0; at < bytes.size(); at += size)
    pieces.emplace_back(bytes.substr(at, size));
  return pieces;
}

// Waits (at most 2 s) until `count` bytes are waiting in the socket, so
// that the next read takes them all at once.
void wait_until_queued(int fd, int count) {
  int queued = 0;
  for (int i = 0; i < 2000 && (::ioctl(fd, FIONREAD, &queued) != 0 || queued < count); ++i)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ(queued, count);
}

// Reads up to `count` lines, stopping at the first error.
Task<> read_lines(BufferedReader& reader, std::string delimiter, std::size_t max_length, int count,
                  Duration deadline, Lines& out) {
  for (int i = 0; i < count; ++i) {
    auto line = co_await reader.read_until(delimiter, max_length, deadline);
    if (!line) {
      out.error = line.error();
      break;
    }
    out.lines.emplace_back(*line);
  }
  out.done = true;
}

// Sends `pieces`, each once the connection has read all before it, so
// that every piece arrives in a read of its own. After each piece it notes
// the most memory of its own the reader held. Stops when the reader is
// done, and waits at most 2 s a piece.
Task<> send_pieces(Connection& connection, int peer, std::vector<std::string> pieces,
                   const BufferedReader& reader, const bool& reader_done,
                   std::size_t& most_memory) {
  const std::uint64_t start = connection.bytes_in();
  std::uint64_t sent = 0;
  for (const std::string& piece : pieces) {
    if (reader_done) co_return;
    EXPECT_TRUE(send_all(peer, piece));
    sent += piece.size();
    for (int i = 0; i < 2000 && !reader_done && connection.bytes_in() - start < sent; ++i)
      co_await connection.loop().sleep(1ms);
    most_memory = std::max(most_memory, reader.own_capacity());
  }
}

Task<> read_lines_from_pieces(BufferedReader& reader, LoopbackPair& pair,
                              std::vector<std::string> pieces, std::string delimiter,
                              std::size_t max_length, int count, Lines& out,
                              std::size_t& most_memory) {
  Loop::current().spawn(read_lines(reader, delimiter, max_length, count, 5s, out));
  Loop::current().spawn(
      send_pieces(pair.connection, pair.peer.get(), pieces, reader, out.done, most_memory));
  co_return;
}

TEST_P(BufferedReaderTest, ReturnsALineWithoutItsDelimiter) {
  Loop loop(options());
  LoopbackPair pair = loopback_pair(loop);
  BufferedReader reader(pair.connection);
  ASSERT_TRUE(send_all(pair.peer.get(), "hello world\n"));
  Lines out;
  loop.run(read_lines(reader, "\n", 100, 1, 5s, out));
  EXPECT_FALSE(out.error) << out.error.message();
  EXPECT_EQ(out.lines, (std::vector<std::string>{"hello world"}));
  EXPECT_EQ(reader.buffered(), 0u) << "the delimiter was consumed";
  EXPECT_EQ(reader.own_capacity(), 0u) << "a line found whole in one read is not copied";
}

TEST_P(BufferedReaderTest, PipelinedLinesAreServedWithoutANewRead) {
  Loop loop(options());
  LoopbackPair pair = loopback_pair(loop);
  BufferedReader reader(pair.connection);
  ASSERT_TRUE(send_all(pair.peer.get(), "a\nbb\n\nccc\n"));
  wait_until_queued(pair.connection.fd(), 10);  // so that one read takes it all
  Lines first;
  loop.run(read_lines(reader, "\n", 100, 1, 2s, first));
  ASSERT_EQ(first.lines, (std::vector<std::string>{"a"}));
  EXPECT_EQ(reader.buffered(), 8u);
  EXPECT_EQ(text_of(reader.peek()), "bb\n\nccc\n");
  // Nothing more comes: a reader that read again would time out here.
  Lines rest;
  loop.run(read_lines(reader, "\n", 100, 3, 2s, rest));
  EXPECT_FALSE(rest.error) << rest.error.message();
  EXPECT_EQ(rest.lines, (std::vector<std::string>{"bb", "", "ccc"}));
  EXPECT_EQ(reader.buffered(), 0u);
  EXPECT_EQ(pair.connection.bytes_in(), 10u);
}

TEST_P(BufferedReaderTest, FindsADelimiterSentByteByByte) {
  Loop loop(options());
  LoopbackPair pair = loopback_pair(loop);
  BufferedReader reader(pair.connection);
  Lines out;
  std::size_t most_memory = 0;
  loop.run(read_lines_from_pieces(reader, pair, pieces_of("split line\nnext\n", 1), "\n", 100, 2,
                                  out, most_memory));
  EXPECT_FALSE(out.error) << out.error.message();
  EXPECT_EQ(out.lines, (std::vector<std::string>{"split line", "next"}));
  EXPECT_EQ(pair.connection.bytes_in(), 16u);
}

TEST_P(BufferedReaderTest, FindsAMultiByteDelimiterSplitAcrossReads) {
  Loop loop(options());
  LoopbackPair pair = loopback_pair(loop);
  BufferedReader reader(pair.connection);
  Lines out;
  std::size_t most_memory = 0;
  // Byte by byte, so "\r" and "\n" always arrive apart; a lone "\r" and a
  // "\r" doubled before the "\n" are part of the line.
  loop.run(read_lines_from_pieces(reader, pair, pieces_of("GET /\r\nx\ry\r\nab\r\r\n\r\n", 1),
                                  "\r\n", 100, 4, out, most_memory));
  EXPECT_FALSE(out.error) << out.error.message();
  EXPECT_EQ(out.lines, (std::vector<std::string>{"GET /", "x\ry", "ab\r", ""}));
}

TEST_P(BufferedReaderTest, FindsADelimiterSplitBetweenTwoReadsThatCarryMoreLines) {
  Loop loop(options());
  LoopbackPair pair = loopback_pair(loop);
  BufferedReader reader(pair.connection);
  Lines out;
  std::size_t most_memory = 0;
  loop.run(read_lines_from_pieces(reader, pair, {"abc\r", "\ndef\r\nghi\r\n"}, "\r\n", 100, 2, out,
                                  most_memory));
  EXPECT_FALSE(out.error) << out.error.message();
  EXPECT_EQ(out.lines, (std::vector<std::string>{"abc", "def"}));
  EXPECT_EQ(reader.own_capacity(), 0u)
      << "the lines after the split one are served from the loop's buffer, not copied";
  EXPECT_EQ(text_of(reader.peek()), "ghi\r\n");
}

TEST_P(BufferedReaderTest, ALineOfExactlyTheCapIsReturned) {
  Loop loop(options());
  LoopbackPair pair = loopback_pair(loop);
  BufferedReader reader(pair.connection);
  const std::string line(100, 'x');
  Lines out;
  std::size_t most_memory = 0;
  // In pieces of 30, so that the line is assembled in the reader's memory.
  loop.run(read_lines_from_pieces(reader, pair, pieces_of(line + "\r\n", 30), "\r\n", 100, 1, out,
                                  most_memory));
  EXPECT_FALSE(out.error) << out.error.message();
  EXPECT_EQ(out.lines, (std::vector<std::string>{line}));
  EXPECT_LE(most_memory, 102u);
}

TEST_P(BufferedReaderTest, ALineOverTheCapInOneReadIsRefused) {
  Loop loop(options());
  LoopbackPair pair = loopback_pair(loop);
  BufferedReader reader(pair.connection);
  ASSERT_TRUE(send_all(pair.peer.get(), std::string(101, 'x') + "\nshort\n"));
  Lines out;
  loop.run(read_lines(reader, "\n", 100, 1, 2s, out));
  EXPECT_EQ(out.error, std::make_error_code(std::errc::message_size));
  EXPECT_EQ(reader.buffered(), 0u) << "what was buffered is dropped";
  EXPECT_FALSE(reader.holds_memory());
}

TEST_P(BufferedReaderTest, AnOverLongLineIsRefusedWithBoundedMemory) {
  Loop loop(options());
  LoopbackPair pair = loopback_pair(loop);
  BufferedReader reader(pair.connection);
  Lines out;
  std::size_t most_memory = 0;
  // 1000 bytes and no delimiter, 7 at a time: the reader must give up at
  // the cap (100 + the delimiter) instead of collecting them all.
  loop.run(read_lines_from_pieces(reader, pair, pieces_of(std::string(1000, 'x'), 7), "\n", 100, 1,
                                  out, most_memory));
  EXPECT_EQ(out.error, std::make_error_code(std::errc::message_size));
  EXPECT_GT(most_memory, 0u) << "the line was assembled in the reader's memory";
  EXPECT_LE(most_memory, 101u) << "the reader's memory never exceeds the cap";
  EXPECT_LE(pair.connection.bytes_in(), 101u + 7u) << "it stopped reading at the cap plus one read";
  EXPECT_FALSE(reader.holds_memory()) << "and gave everything back";
}

TEST_P(BufferedReaderTest, AFloodWithoutDelimiterIsReadNoFurtherThanTheCapAndOneRead) {
  Loop loop(options());
  LoopbackPair pair = loopback_pair(loop);
  BufferedReader reader(pair.connection);
  // More than the socket buffers hold: a reader that kept reading would
  // see it all.
  const std::string flood(4 << 20, 'x');
  std::thread sender([&] { send_all(pair.peer.get(), flood); });
  Lines out;
  loop.run(read_lines(reader, "\n", 1000, 1, 5s, out));
  const std::uint64_t read = pair.connection.bytes_in();
  pair.connection.close();  // ends the sender
  sender.join();
  EXPECT_EQ(out.error, std::make_error_code(std::errc::message_size));
  EXPECT_GE(read, 1001u);
  EXPECT_LE(read, 1001u + detail::Engine::buffer_size(loop));
  EXPECT_FALSE(reader.holds_memory());
}

TEST_P(BufferedReaderTest, EndOfFileBeforeTheDelimiterKeepsThePartialLine) {
  Loop loop(options());
  LoopbackPair pair = loopback_pair(loop);
  BufferedReader reader(pair.connection);
  ASSERT_TRUE(send_all(pair.peer.get(), "whole\npartial"));
  ASSERT_EQ(::shutdown(pair.peer.get(), SHUT_WR), 0);
  Lines out;
  loop.run(read_lines(reader, "\n", 100, 3, 2s, out));
  EXPECT_EQ(out.lines, (std::vector<std::string>{"whole"}));
  EXPECT_EQ(out.error, end_of_file());
  EXPECT_EQ(reader.buffered(), 7u);
  EXPECT_EQ(text_of(reader.peek()), "partial");
}

TEST_P(BufferedReaderTest, EndOfFileWithNothingBuffered) {
  Loop loop(options());
  LoopbackPair pair = loopback_pair(loop);
  BufferedReader reader(pair.connection);
  ASSERT_EQ(::shutdown(pair.peer.get(), SHUT_WR), 0);
  Lines out;
  loop.run(read_lines(reader, "\n", 100, 1, 2s, out));
  EXPECT_TRUE(out.lines.empty());
  EXPECT_EQ(out.error, end_of_file());
  EXPECT_EQ(reader.buffered(), 0u);
  EXPECT_FALSE(reader.holds_memory());
}

// Reads `sizes` exact counts, then one line.
Task<> read_counts_then_line(BufferedReader& reader, std::vector<std::size_t> sizes, Lines& out) {
  for (std::size_t size : sizes) {
    auto bytes = co_await reader.read_exactly(size, 5s);
    if (!bytes) {
      out.error = bytes.error();
      out.done = true;
      co_return;
    }
    out.lines.push_back(text_of(*bytes));
  }
  co_await read_lines(reader, "\n", 100, 1, 5s, out);
}

Task<> read_counts_from_pieces(BufferedReader& reader, LoopbackPair& pair,
                               std::vector<std::string> pieces, std::vector<std::size_t> sizes,
                               Lines& out, std::size_t& most_memory) {
  Loop::current().spawn(read_counts_then_line(reader, sizes, out));
  Loop::current().spawn(
      send_pieces(pair.connection, pair.peer.get(), pieces, reader, out.done, most_memory));
  co_return;
}

TEST_P(BufferedReaderTest, ReadExactlyGathersBytesAcrossReads) {
  Loop loop(options());
  LoopbackPair pair = loopback_pair(loop);
  BufferedReader reader(pair.connection);
  Lines out;
  std::size_t most_memory = 0;
  // Reads of 3 bytes: "012", "345", "678", "9ab", "cde", "f\n".
  loop.run(read_counts_from_pieces(reader, pair, pieces_of("0123456789abcdef\n", 3), {10, 0, 4},
                                   out, most_memory));
  EXPECT_FALSE(out.error) << out.error.message();
  EXPECT_EQ(out.lines, (std::vector<std::string>{"0123456789", "", "abcd", "ef"}));
}

TEST_P(BufferedReaderTest, ReadExactlyFromOneReadAndAfterALine) {
  Loop loop(options());
  LoopbackPair pair = loopback_pair(loop);
  BufferedReader reader(pair.connection);
  // A length-prefixed body after a header line, all in one read.
  ASSERT_TRUE(send_all(pair.peer.get(), "5\nhello"));
  Lines header;
  loop.run(read_lines(reader, "\n", 100, 1, 2s, header));
  ASSERT_EQ(header.lines, (std::vector<std::string>{"5"}));
  Lines body;
  ASSERT_EQ(::shutdown(pair.peer.get(), SHUT_WR), 0);
  loop.run(read_counts_then_line(reader, {5}, body));
  EXPECT_EQ(body.lines, (std::vector<std::string>{"hello"}));
  EXPECT_EQ(body.error, end_of_file()) << "then the line after it finds the end";
  EXPECT_EQ(reader.own_capacity(), 0u);
}

TEST_P(BufferedReaderTest, ReadExactlyMeetsEndOfFile) {
  Loop loop(options());
  LoopbackPair pair = loopback_pair(loop);
  BufferedReader reader(pair.connection);
  ASSERT_TRUE(send_all(pair.peer.get(), "abc"));
  ASSERT_EQ(::shutdown(pair.peer.get(), SHUT_WR), 0);
  Lines out;
  loop.run(read_counts_then_line(reader, {5}, out));
  EXPECT_EQ(out.error, end_of_file());
  EXPECT_EQ(text_of(reader.peek()), "abc");
}

Task<> read_line_timed(BufferedReader& reader, Duration deadline, Lines& out, Duration& waited) {
  const auto started = Clock::now();
  co_await read_lines(reader, "\n", 100, 1, deadline, out);
  waited = Clock::now() - started;
}

TEST_P(BufferedReaderTest, ADeadlinePassingReturnsTimedOutAndKeepsThePartialLine) {
  Loop loop(options());
  LoopbackPair pair = loopback_pair(loop);
  BufferedReader reader(pair.connection);
  ASSERT_TRUE(send_all(pair.peer.get(), "partial"));
  Lines out;
  Duration waited{};
  loop.run(read_line_timed(reader, 50ms, out, waited));
  EXPECT_EQ(out.error, timed_out());
  // Tolerance: never early; late by up to 2 s on a loaded machine.
  EXPECT_GE(waited, 50ms);
  EXPECT_LT(waited, 2s);
  EXPECT_EQ(reader.buffered(), 7u);
  // The next call goes on with what was buffered.
  ASSERT_TRUE(send_all(pair.peer.get(), " line\n"));
  Lines more;
  loop.run(read_lines(reader, "\n", 100, 1, 2s, more));
  EXPECT_FALSE(more.error) << more.error.message();
  EXPECT_EQ(more.lines, (std::vector<std::string>{"partial line"}));
}

Task<> cancel_soon(Loop& loop) {
  co_await loop.sleep(20ms);
  detail::Engine::cancel_all(loop);
}

Task<> read_and_cancel(BufferedReader& reader, Lines& out) {
  Loop::current().spawn(read_lines(reader, "\n", 100, 1, 10s, out));
  Loop::current().spawn(cancel_soon(Loop::current()));
  co_return;
}

TEST_P(BufferedReaderTest, CancellationPassesThrough) {
  Loop loop(options());
  LoopbackPair pair = loopback_pair(loop);
  BufferedReader reader(pair.connection);
  Lines out;
  const auto started = Clock::now();
  loop.run(read_and_cancel(reader, out));
  EXPECT_EQ(out.error, cancelled());
  EXPECT_LT(Clock::now() - started, 5s);
}

// What the reader held while it waited for the next message.
struct HeldWhileWaiting {
  bool memory = true;
  std::size_t own_capacity = 0;
  std::size_t buffered = 0;
};

// Starts the reader's next call, notes what it holds once it waits, then
// sends the line that ends the wait.
Task<> note_while_waiting(BufferedReader& reader, int peer, Lines& out, HeldWhileWaiting& held) {
  Loop::current().spawn(read_lines(reader, "\n", 100, 1, 5s, out));  // runs until it waits
  co_await Loop::current().sleep(10ms);
  held = {reader.holds_memory(), reader.own_capacity(), reader.buffered()};
  EXPECT_TRUE(send_all(peer, "end\n"));
}

TEST_P(BufferedReaderTest, AReaderWaitingForTheNextLineHoldsNoMemory) {
  Loop loop(options());
  LoopbackPair pair = loopback_pair(loop);
  BufferedReader reader(pair.connection);
  ASSERT_TRUE(send_all(pair.peer.get(), "first\n"));
  Lines first;
  loop.run(read_lines(reader, "\n", 100, 1, 2s, first));
  ASSERT_EQ(first.lines, (std::vector<std::string>{"first"}));
  EXPECT_EQ(reader.own_capacity(), 0u) << "no memory of its own";
  EXPECT_TRUE(reader.holds_memory()) << "the loop's buffer, which the returned view points into";
  Lines next;
  HeldWhileWaiting held;
  loop.run(note_while_waiting(reader, pair.peer.get(), next, held));
  EXPECT_FALSE(held.memory) << "the loop's buffer went back before the wait";
  EXPECT_EQ(held.own_capacity, 0u);
  EXPECT_EQ(next.lines, (std::vector<std::string>{"end"}));
}

TEST_P(BufferedReaderTest, AReaderWaitingAfterALineThatSpannedReadsHoldsNoMemory) {
  Loop loop(options());
  LoopbackPair pair = loopback_pair(loop);
  BufferedReader reader(pair.connection);
  Lines first;
  std::size_t most_memory = 0;
  loop.run(read_lines_from_pieces(reader, pair, pieces_of("spanning\n", 3), "\n", 100, 1, first,
                                  most_memory));
  ASSERT_EQ(first.lines, (std::vector<std::string>{"spanning"}));
  EXPECT_GT(most_memory, 0u) << "the line was assembled in memory of the reader's own";
  Lines next;
  HeldWhileWaiting held;
  loop.run(note_while_waiting(reader, pair.peer.get(), next, held));
  EXPECT_FALSE(held.memory) << "that memory was freed once the line was consumed";
  EXPECT_EQ(held.own_capacity, 0u);
  EXPECT_EQ(next.lines, (std::vector<std::string>{"end"}));
}

TEST_P(BufferedReaderTest, AReaderWaitingForTheRestOfALineHoldsOnlyThatPart) {
  Loop loop(options());
  LoopbackPair pair = loopback_pair(loop);
  BufferedReader reader(pair.connection);
  ASSERT_TRUE(send_all(pair.peer.get(), "first\npart of the "));
  Lines first;
  loop.run(read_lines(reader, "\n", 100, 1, 2s, first));
  ASSERT_EQ(first.lines, (std::vector<std::string>{"first"}));
  Lines next;
  HeldWhileWaiting held;
  loop.run(note_while_waiting(reader, pair.peer.get(), next, held));
  EXPECT_TRUE(held.memory);
  EXPECT_EQ(held.buffered, 12u);
  EXPECT_GE(held.own_capacity, 12u) << "the partial line, copied out of the loop's buffer";
  EXPECT_LE(held.own_capacity, 101u);
  EXPECT_EQ(next.lines, (std::vector<std::string>{"part of the end"}));
}

Task<> hold_one_read(Connection& connection, std::vector<InputBuffer>& held) {
  auto input = co_await connection.read(64, 5s);
  EXPECT_TRUE(input) << input.error().message();
  if (input) held.push_back(std::move(*input));
}

Task<> hold_reads(std::vector<LoopbackPair>& pairs, std::vector<InputBuffer>& held) {
  for (auto& pair : pairs)
    Loop::current().spawn(hold_one_read(pair.connection, held));
  co_return;
}

Task<> read_line_then_probe(BufferedReader& reader, Connection& probe, Lines& out,
                            std::error_code& probe_error) {
  co_await read_lines(reader, "\n", 100, 1, 5s, out);
  auto input = co_await probe.read(64, 5s);
  probe_error = input ? std::error_code{} : input.error();
}

TEST_P(BufferedReaderTest, ABufferKeptBetweenCallsLeavesAScarcePool) {
  LoopOptions small = options();
  small.buffer_size = 4096;
  small.buffers_initial = 64;
  small.buffers_max = 64;
  Loop loop(small);
  // 63 of the 64 buffers held elsewhere; the reader's read takes the last.
  std::vector<LoopbackPair> others;
  for (int i = 0; i < 63; ++i) {
    others.push_back(loopback_pair(loop));
    ASSERT_TRUE(send_all(others.back().peer.get(), "x"));
  }
  std::vector<InputBuffer> held;
  loop.run(hold_reads(others, held));
  ASSERT_EQ(held.size(), 63u);
  LoopbackPair pair = loopback_pair(loop);
  LoopbackPair probe = loopback_pair(loop);
  ASSERT_TRUE(send_all(pair.peer.get(), "line\n"));
  ASSERT_TRUE(send_all(probe.peer.get(), "y"));
  BufferedReader reader(pair.connection);
  Lines out;
  std::error_code probe_error;
  loop.run(read_line_then_probe(reader, probe.connection, out, probe_error));
  EXPECT_EQ(out.lines, (std::vector<std::string>{"line"}));
  EXPECT_FALSE(probe_error) << "the reader kept the pool's last buffer: " << probe_error.message();
  EXPECT_TRUE(reader.holds_memory()) << "the line's bytes, moved out of the pool";
  held.clear();
}

TEST_P(BufferedReaderTest, AnEmptyDelimiterIsRefused) {
  Loop loop(options());
  LoopbackPair pair = loopback_pair(loop);
  BufferedReader reader(pair.connection);
  Lines out;
  loop.run(read_lines(reader, "", 100, 1, 2s, out));
  EXPECT_EQ(out.error, std::make_error_code(std::errc::invalid_argument));
}

SALAM_INSTANTIATE_FOR_BACKENDS(BufferedReaderTest);

}  // namespace
}  // namespace salam
