// The fault-injection seam on both backends: each operation kind fails
// with the error SALAM_FAULTS names, as the kernel's failure would look to
// the awaiter, and the connection and the loop carry on; nothing the real
// operation would have held (a descriptor, a pooled buffer) is left behind.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <salam/connection.hpp>
#include <salam/event.hpp>
#include <salam/loop.hpp>
#include <salam/scope.hpp>

#include "../support/backends.hpp"
#include "../support/socket_pair.hpp"
#include "engine.hpp"

namespace salam {
namespace {

using namespace std::chrono_literals;
using testing::make_pair;
using testing::Pair;

// SALAM_FAULTS for the loops created while it lives.
class ScopedFaults {
 public:
  explicit ScopedFaults(const char* text) { ::setenv("SALAM_FAULTS", text, 1); }
  ~ScopedFaults() { ::unsetenv("SALAM_FAULTS"); }
  ScopedFaults(const ScopedFaults&) = delete;
  ScopedFaults& operator=(const ScopedFaults&) = delete;
};

class FaultBackendTest : public testing::LoopBackendTest {};

std::size_t open_descriptors() {
  const std::filesystem::directory_iterator fds("/proc/self/fd");
  return static_cast<std::size_t>(std::distance(begin(fds), end(fds)));
}

std::error_code error_of(const Result<InputBuffer>& input) {
  return input ? std::error_code{} : input.error();
}

std::string text_of(const Result<InputBuffer>& input) {
  return input ? std::string(input->text()) : "<" + input.error().message() + ">";
}

// The peer's bytes up to end of file.
std::string drain(int fd) {
  std::string out;
  char chunk[256];
  for (ssize_t n; (n = ::recv(fd, chunk, sizeof chunk, 0)) > 0;)
    out.append(chunk, static_cast<std::size_t>(n));
  return out;
}

Task<> read_fail_read(Connection& connection, std::vector<std::string>& reads) {
  for (int i = 0; i < 3; ++i)
    reads.push_back(text_of(co_await connection.read(2, 2s)));
  EXPECT_FALSE(co_await connection.write_all("ok", 2s));
}

TEST_P(FaultBackendTest, AReadFailsAndLosesNoInput) {
  ScopedFaults faults("read=ECONNRESET:every=2");
  Loop loop(options());
  Pair pair = make_pair(loop);
  ASSERT_EQ(::send(pair.peer.get(), "abcd", 4, 0), 4);
  std::vector<std::string> reads;
  loop.run(read_fail_read(pair.connection, reads));
  // The failed read never reached the socket: the next one has its bytes.
  EXPECT_EQ(reads,
            (std::vector<std::string>{"ab", "<" + errno_code(ECONNRESET).message() + ">", "cd"}));
  pair.connection.close();
  EXPECT_EQ(drain(pair.peer.get()), "ok");
}

Task<> read_some_once(Connection& connection, std::error_code& error) {
  std::byte into[16];
  auto read = co_await connection.read_some(into, 2s);
  error = read ? std::error_code{} : read.error();
}

TEST_P(FaultBackendTest, AReadIntoTheCallersBufferFailsToo) {
  ScopedFaults faults("read=EIO:every=1");
  Loop loop(options());
  Pair pair = make_pair(loop);
  ASSERT_EQ(::send(pair.peer.get(), "x", 1, 0), 1);
  std::error_code error;
  loop.run(read_some_once(pair.connection, error));
  EXPECT_EQ(error, errno_code(EIO));
}

Task<> pooled_then_plain(Connection& connection, std::error_code& pooled, std::string& plain) {
  pooled = error_of(co_await connection.read(16, 2s));
  std::byte into[16];
  auto read = co_await connection.read_some(into, 2s);
  if (read) plain.assign(reinterpret_cast<const char*>(into), *read);
}

TEST_P(FaultBackendTest, ABufferFaultFailsOnlyPooledReads) {
  ScopedFaults faults("buffer=ENOBUFS:every=1");
  Loop loop(options());
  Pair pair = make_pair(loop);
  ASSERT_EQ(::send(pair.peer.get(), "xy", 2, 0), 2);
  std::error_code pooled;
  std::string plain;
  loop.run(pooled_then_plain(pair.connection, pooled, plain));
  EXPECT_EQ(pooled, errno_code(ENOBUFS)) << "as when the pool has nothing to lend";
  EXPECT_EQ(plain, "xy");
}

TEST_P(FaultBackendTest, TheBufferRuleComesBeforeTheReadRule) {
  // The buffer is taken before the read runs: its rule decides first, and
  // the read rule does not count a read that never ran.
  ScopedFaults faults("buffer=ENOBUFS:every=1;read=ECONNRESET:every=2");
  Loop loop(options());
  Pair pair = make_pair(loop);
  std::error_code pooled;
  std::string plain;
  ASSERT_EQ(::send(pair.peer.get(), "xy", 2, 0), 2);
  loop.run(pooled_then_plain(pair.connection, pooled, plain));
  EXPECT_EQ(pooled, errno_code(ENOBUFS));
  EXPECT_EQ(plain, "xy") << "the read rule counted the pooled read";
}

Task<> write_twice(Connection& connection, std::error_code& first, std::error_code& second) {
  first = co_await connection.write_all("first", 2s);
  second = co_await connection.write_all("second", 2s);
  EXPECT_FALSE(co_await connection.write_all("", 2s)) << "an empty write sends nothing";
}

TEST_P(FaultBackendTest, AWriteFailsAfterTheFirst) {
  ScopedFaults faults("write=EPIPE:after=1");
  Loop loop(options());
  Pair pair = make_pair(loop);
  std::error_code first;
  std::error_code second;
  loop.run(write_twice(pair.connection, first, second));
  EXPECT_FALSE(first) << first.message();
  EXPECT_EQ(second, errno_code(EPIPE));
  EXPECT_EQ(pair.connection.bytes_out(), 5u);
  pair.connection.close();
  EXPECT_EQ(drain(pair.peer.get()), "first") << "the failed write sent nothing";
}

Task<> timed_operations(Connection& connection, std::vector<std::string>& outcomes) {
  Loop& loop = connection.loop();
  auto slept = co_await loop.sleep(1ms);
  outcomes.push_back(slept ? slept.message() : "slept");
  slept = co_await loop.sleep(1ms);
  outcomes.push_back(slept ? slept.message() : "slept");
  outcomes.push_back(text_of(co_await connection.read(1, 2s)));
  outcomes.push_back(text_of(co_await connection.read(1, 2s)));
  outcomes.push_back(text_of(co_await connection.read(1)));  // no deadline: no timer
}

TEST_P(FaultBackendTest, ATimerThatCannotBeArmedFailsItsOperation) {
  ScopedFaults faults("timer=ENOMEM:every=2");
  Loop loop(options());
  Pair pair = make_pair(loop);
  ASSERT_EQ(::send(pair.peer.get(), "ab", 2, 0), 2);
  std::vector<std::string> outcomes;
  loop.run(timed_operations(pair.connection, outcomes));
  const std::string no_memory = errno_code(ENOMEM).message();
  EXPECT_EQ(outcomes,
            (std::vector<std::string>{"slept", no_memory, "a", "<" + no_memory + ">", "b"}));
}

Task<> wait_for_post(Loop& loop, bool& woken) {
  Event posted(loop);
  std::thread poster([&loop, &posted] {
    std::this_thread::sleep_for(20ms);
    loop.post([&posted] { posted.set(); });
  });
  woken = co_await posted.wait();
  poster.join();
}

TEST_P(FaultBackendTest, AWaitWithoutADeadlineNeedsNoTimer) {
  // Before, an Event wait with no deadline took a timer slot, and without
  // one it returned at once as if its deadline had passed: a shard's wait
  // for its stop request would have ended the shard.
  ScopedFaults faults("timer=ENOMEM:every=1");
  Loop loop(options());
  bool woken = false;
  loop.run(wait_for_post(loop, woken));
  EXPECT_TRUE(woken);
}

TEST_P(FaultBackendTest, TheLoopsOwnWakeUpReadNeverFails) {
  ScopedFaults faults("read=EIO:every=1");
  Loop loop(options());
  bool woken = false;
  loop.run(wait_for_post(loop, woken));
  EXPECT_TRUE(woken) << "a post did not wake the loop";
}

Task<> read_once(Connection& connection, std::error_code& error) {
  error = error_of(co_await connection.read(16));
}

Task<> read_then_close(Connection& connection, std::error_code& error) {
  TaskScope reading;
  reading.spawn(read_once(connection, error));  // runs to its read, which is to fail
  connection.close();                           // before the failure is delivered
  co_await reading.join();
}

TEST_P(FaultBackendTest, AFailureCancelledBeforeItIsDeliveredEndsCancelled) {
  ScopedFaults faults("read=ECONNRESET:every=1");
  Loop loop(options());
  Pair pair = make_pair(loop);
  std::error_code error;
  loop.run(read_then_close(pair.connection, error));
  EXPECT_EQ(error, cancelled());
}

Task<> write_once(Connection& connection, std::error_code& error) {
  error = co_await connection.write_all("x", 2s);
}

TEST_P(FaultBackendTest, EachLoopCountsItsOwnOperations) {
  ScopedFaults faults("write=EPIPE:every=2");
  Loop first(options());
  Loop second(options());
  Pair to_first = make_pair(first);
  Pair to_second = make_pair(second);
  std::vector<std::error_code> errors(4);
  first.run(write_once(to_first.connection, errors[0]));
  second.run(write_once(to_second.connection, errors[1]));
  first.run(write_once(to_first.connection, errors[2]));
  second.run(write_once(to_second.connection, errors[3]));
  EXPECT_EQ(errors, (std::vector<std::error_code>{{}, {}, errno_code(EPIPE), errno_code(EPIPE)}));
}

TEST_P(FaultBackendTest, AMalformedPlanFailsTheLoopAndLeavesNothingOpen) {
  const std::size_t before = open_descriptors();
  {
    ScopedFaults faults("read=ECONNRESET");
    try {
      Loop loop(options());
      ADD_FAILURE() << "a loop started with a malformed SALAM_FAULTS";
    } catch (const std::invalid_argument& e) {
      EXPECT_STREQ(e.what(),
                   "SALAM_FAULTS: 'read=ECONNRESET': say when it fails: every=N, after=N or p=P");
    }
  }
  EXPECT_EQ(open_descriptors(), before);
}

TEST_P(FaultBackendTest, AnEmptyPlanIsNoPlan) {
  ScopedFaults faults("");
  Loop loop(options());
  Pair pair = make_pair(loop);
  std::error_code error;
  loop.run(write_once(pair.connection, error));
  EXPECT_FALSE(error);
}

// A listener on 127.0.0.1 and blocking clients that connect to it; the
// kernel completes their handshakes before anything accepts.
struct Listener {
  FileDescriptor socket;
  SocketAddress address;

  Listener() : socket(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) {
    address = SocketAddress::parse("127.0.0.1:0");
    EXPECT_EQ(::bind(socket.get(), address.data(), address.size()), 0);
    EXPECT_EQ(::listen(socket.get(), 16), 0);
    socklen_t length = sizeof(sockaddr_in);
    EXPECT_EQ(::getsockname(socket.get(), address.data(), &length), 0);
  }
  FileDescriptor connect() const {
    FileDescriptor client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    EXPECT_EQ(::connect(client.get(), address.data(), address.size()), 0);
    return client;
  }
};

// True if `fd` sees end of file (or a reset) within a second.
bool sees_end(int fd) {
  pollfd poll_fd{fd, POLLIN, 0};
  char byte;
  return ::poll(&poll_fd, 1, 1000) == 1 && ::recv(fd, &byte, 1, MSG_DONTWAIT) <= 0;
}

// A raw multishot accept, as the acceptor runs one: every completion's
// result, until one without kMoreCompletions ends it.
struct Accepts : detail::Operation {
  Loop* loop = nullptr;
  Event* ended = nullptr;
  std::size_t cancel_at = 0;  // cancel once this many results are in
  std::vector<int> results;
};

void on_accepted(detail::Operation& op) noexcept {
  auto& accepts = static_cast<Accepts&>(op);
  accepts.results.push_back(op.result);
  if ((op.flags & detail::kMoreCompletions) == 0) {
    accepts.ended->set();
  } else if (accepts.results.size() == accepts.cancel_at) {
    detail::Engine::cancel(*accepts.loop, op);
  }
}

Task<> accept_until_ended(Loop& loop, Accepts& accepts, int listener, std::size_t cancel_at) {
  Event ended(loop);
  accepts.loop = &loop;
  accepts.ended = &ended;
  accepts.cancel_at = cancel_at;
  accepts.code = detail::OpCode::accept;
  accepts.multishot = true;
  accepts.fd = listener;
  accepts.on_complete = &on_accepted;
  if (detail::Engine::start(loop, accepts)) {
    accepts.results.push_back(accepts.result);
    co_return;
  }
  if (!co_await ended.wait(5s)) {
    ADD_FAILURE() << "the multishot accept did not end";
    detail::Engine::cancel(loop, accepts);
    co_await ended.wait();
  }
}

TEST_P(FaultBackendTest, AMultishotAcceptEndsWithTheErrorAndClosesItsConnection) {
  ScopedFaults faults("accept=EMFILE:every=3");
  Loop loop(options());
  Listener listener;
  const std::size_t before = open_descriptors();
  std::vector<FileDescriptor> clients;
  for (int i = 0; i < 3; ++i)
    clients.push_back(listener.connect());
  Accepts accepts;
  loop.run(accept_until_ended(loop, accepts, listener.socket.get(), 100));
  ASSERT_EQ(accepts.results.size(), 3u);
  EXPECT_GE(accepts.results[0], 0);
  EXPECT_GE(accepts.results[1], 0);
  EXPECT_EQ(accepts.results[2], -EMFILE) << "the accept ends, as a kernel error ends it";
  EXPECT_TRUE(sees_end(clients[2].get())) << "the third connection was not closed";

  // Armed again (after the acceptor's backoff), it accepts as before.
  clients.push_back(listener.connect());
  loop.run(accept_until_ended(loop, accepts, listener.socket.get(), 4));
  ASSERT_EQ(accepts.results.size(), 5u);
  EXPECT_GE(accepts.results[3], 0);
  EXPECT_EQ(accepts.results[4], -ECANCELED);
  for (const std::size_t i : {0u, 1u, 3u})
    ::close(accepts.results[i]);
  clients.clear();
  EXPECT_EQ(open_descriptors(), before);
}

TEST_P(FaultBackendTest, AMultishotAcceptThatFailsLosesNoOtherConnection) {
  ScopedFaults faults("accept=EMFILE:every=3");
  Loop loop(options());
  Listener listener;
  std::vector<FileDescriptor> clients;
  for (int i = 0; i < 5; ++i)
    clients.push_back(listener.connect());
  Accepts accepts;
  loop.run(accept_until_ended(loop, accepts, listener.socket.get(), 100));
  ASSERT_FALSE(accepts.results.empty());
  EXPECT_EQ(accepts.results.back(), -EMFILE);
  accepts.results.pop_back();
  EXPECT_TRUE(sees_end(clients[2].get())) << "the third connection was not closed";
  // io_uring accepted the last two before its cancellation landed, and
  // passed them on; epoll stopped at the third and left them queued.
  std::size_t queued = 0;
  while (FileDescriptor(::accept4(listener.socket.get(), nullptr, nullptr, SOCK_CLOEXEC)).valid())
    ++queued;
  EXPECT_EQ(accepts.results.size() + queued, 4u);
  for (const int fd : accepts.results) {
    EXPECT_GE(fd, 0);
    ::close(fd);
  }
}

// A raw one-shot operation's result, and whether it completed at once.
struct OneShot {
  Loop& loop;
  detail::Operation& op;
  bool at_once = false;
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> handle) noexcept {
    op.waiter = handle;
    op.on_complete = [](detail::Operation& done) { done.waiter.resume(); };
    at_once = detail::Engine::start(loop, op, 5s);
    return !at_once;
  }
  int await_resume() const noexcept { return op.result; }
};

Task<> accept_once(Loop& loop, int listener, int& result, bool& at_once) {
  detail::Operation op;
  op.code = detail::OpCode::accept;
  op.fd = listener;
  OneShot accept{loop, op};
  result = co_await accept;
  at_once = accept.at_once;
}

TEST_P(FaultBackendTest, AOneShotAcceptFailsLaterAndLeavesItsConnectionQueued) {
  ScopedFaults faults("accept=ECONNABORTED:every=1");
  Loop loop(options());
  Listener listener;
  FileDescriptor client = listener.connect();
  int result = 0;
  bool at_once = true;
  loop.run(accept_once(loop, listener.socket.get(), result, at_once));
  EXPECT_EQ(result, -ECONNABORTED);
  EXPECT_FALSE(at_once) << "an io_uring accept never completes at once; the seam neither";
  // The real accept never ran: the connection is still in the queue.
  FileDescriptor accepted(::accept4(listener.socket.get(), nullptr, nullptr, SOCK_CLOEXEC));
  EXPECT_TRUE(accepted.valid());
}

SALAM_INSTANTIATE_FOR_BACKENDS(FaultBackendTest);

}  // namespace
}  // namespace salam
