// The Server over real loopback sockets, on both backends: concurrency,
// slow and silent clients, lingering close, resets, several listeners and
// structured shutdown.
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <salam/salam.hpp>

#include "../support/backends.hpp"
#include "../support/clients.hpp"

namespace salam {
namespace {

using namespace std::chrono_literals;
using testing::connect_blocking;
using testing::greet_once;
using testing::read_until_eof;
using testing::run_exchanges;
using testing::send_all;

constexpr std::string_view kHello = "Hello, client!";

// The greeting protocol, with the read deadline a parameter.
Task<> greet(Connection client, Duration read_timeout) {
  auto request = co_await client.read(1024, read_timeout);
  if (request) co_await client.write_all(kHello, 10s);
}

Handler greeter(Duration read_timeout = 10s) {
  return [read_timeout](Connection client) { return greet(std::move(client), read_timeout); };
}

// Sends a lot, for reset-mid-write tests.
Task<> flood(Connection client, std::shared_ptr<std::atomic<int>> write_errors) {
  std::vector<std::byte> chunk(1 << 20, std::byte{'x'});
  for (int i = 0; i < 200; ++i) {
    if (auto error = co_await client.write_all(chunk, 10s)) {
      write_errors->fetch_add(1);
      break;
    }
  }
}

// Waits for input for ever (until shutdown cancels it).
Task<> wait_for_ever(Connection client, std::shared_ptr<std::atomic<int>> cancelled_reads) {
  auto input = co_await client.read(1024);
  if (!input && input.error() == cancelled()) cancelled_reads->fetch_add(1);
}

// Replies after a pause, to have work in flight at stop().
Task<> slow_greet(Connection client) {
  auto request = co_await client.read(1024, 5s);
  co_await client.loop().sleep(200ms);
  if (request) co_await client.write_all(kHello, 5s);
}

// Records who connected, as the handler sees it.
Task<> record_peer(Connection client, std::shared_ptr<std::mutex> mutex,
                   std::shared_ptr<std::vector<std::string>> peers) {
  {
    std::lock_guard lock(*mutex);
    peers->push_back(client.peer().to_string());
  }
  co_await client.write_all(kHello, 5s);
}

class ServerTest : public ::testing::TestWithParam<BackendKind> {
 protected:
  void SetUp() override {
    SALAM_REQUIRE_BACKEND(GetParam());
    testing::raise_descriptor_limit();
  }

  ServerOptions options(unsigned threads = 2) const {
    ServerOptions options;
    options.threads = threads;
    options.loop.backend = GetParam();
    return options;
  }

  // Waits up to `limit` for the server's connection count to reach 0.
  static bool connections_drop_to_zero(const Server& server, Duration limit = 5s) {
    const TimePoint until = Clock::now() + limit;
    while (server.connection_count() != 0) {
      if (Clock::now() > until) return false;
      std::this_thread::sleep_for(10ms);
    }
    return true;
  }
};

TEST_P(ServerTest, ServesAThousandConcurrentClients) {
  for (bool reuse_port : {false, true}) {
    SCOPED_TRACE(reuse_port ? "one listener per shard" : "one shared listener");
    Server server(options());
    server.listen({.address = "127.0.0.1:0", .reuse_port = reuse_port}, greeter());
    server.start();
    auto stats = run_exchanges(server.local_socket_address(0), 1000, 1000, "hi", kHello, 60s);
    EXPECT_EQ(stats.ok, 1000) << stats.first_problem;
    EXPECT_EQ(stats.wrong_reply, 0);
    EXPECT_EQ(stats.failed, 0);
    EXPECT_TRUE(connections_drop_to_zero(server));
    server.stop(1s);
    server.wait();
    EXPECT_EQ(server.cancelled_at_drain(), 0u);
  }
}

// The greeting protocol with 200 µs of work: a load that keeps every shard
// busy. (It reads the request first: a server that closes before the
// request arrives resets the connection, as the tutorial's would.)
Task<> greet_busily(Connection client) {
  auto request = co_await client.read(1024, 5s);
  if (!request) co_return;
  const TimePoint until = Clock::now() + 200us;
  while (Clock::now() < until) {
  }
  co_await client.write_all(kHello, 5s);
}

TEST_P(ServerTest, EveryShardServesAFairShare) {
  // Shard per core means nothing if one shard takes every connection (as
  // a multishot accept on a shared listener did on io_uring: 0 of 2000 on
  // the other shard). Under a load that keeps the shards busy, each must
  // take at least a quarter of its share: the tolerance of a noisy 2-core
  // machine running other tests at once (alone, the split is near even;
  // docs/performance.md has the figures).
  // (On epoll, a shared listener wakes the first shard that is idle in
  // epoll_wait: under a light load that may be one shard most of the
  // time, which costs nothing, since it keeps up.)
  for (unsigned shards : {2u, 4u}) {
    for (bool reuse_port : {false, true}) {
      SCOPED_TRACE(std::to_string(shards) + " shards, " +
                   (reuse_port ? "one listener per shard" : "one shared listener"));
      Server server(options(shards));
      server.listen({.address = "127.0.0.1:0", .reuse_port = reuse_port}, greet_busily);
      server.start();
      const auto address = server.local_socket_address(0);
      std::vector<std::thread> clients;
      std::atomic<int> ok = 0;
      std::mutex mutex;
      std::string problems;
      for (int i = 0; i < 2; ++i) {
        clients.emplace_back([&] {
          const auto stats = run_exchanges(address, 1000, 32, "hi", kHello, 60s);
          ok += stats.ok;
          std::lock_guard lock(mutex);
          problems += stats.first_problem;
        });
      }
      for (auto& client : clients)
        client.join();
      EXPECT_EQ(ok.load(), 2000) << problems;
      const auto accepted = server.accepted_per_shard();
      ASSERT_EQ(accepted.size(), shards);
      std::uint64_t total = 0;
      for (auto count : accepted)
        total += count;
      EXPECT_EQ(total, 2000u);
      for (unsigned shard = 0; shard < shards; ++shard) {
        EXPECT_GE(accepted[shard], 2000u / shards / 4) << "shard " << shard << " of " << shards;
      }
      server.stop(1s);
      server.wait();
    }
  }
}

TEST_P(ServerTest, ASilentClientDelaysNobodyAndIsClosedAtTheReadTimeout) {
  Server server(options(1));  // one shard: the silent client shares it with everyone
  server.listen({.address = "127.0.0.1:0"}, greeter(500ms));
  server.start();
  const auto address = server.local_socket_address(0);

  auto silent = connect_blocking(address, 10s);
  ASSERT_TRUE(silent);
  const auto silent_since = Clock::now();
  for (int i = 0; i < 20; ++i) {
    const auto started = Clock::now();
    int error = -1;
    EXPECT_EQ(greet_once(address, "hi", &error), kHello);
    EXPECT_EQ(error, 0);
    // Served at once, not after the silent client's 500 ms (tolerance: a
    // loaded 2-core machine may add a few hundred ms, never the timeout).
    EXPECT_LT(Clock::now() - started, 450ms);
  }
  int error = -1;
  EXPECT_EQ(read_until_eof(silent.get(), &error), "") << "a silent client gets no reply";
  EXPECT_EQ(error, 0) << "it is closed cleanly, not reset";
  const auto waited = Clock::now() - silent_since;
  EXPECT_GE(waited, 500ms);
  EXPECT_LT(waited, 5s);
  server.stop(1s);
  server.wait();
}

TEST_P(ServerTest, ReplySurvivesUnreadInput) {
  // The client sends 64 KiB but the server reads only its first 1024
  // bytes. A plain close() would answer the unread bytes with an RST that
  // can destroy the reply; the lingering close must deliver it intact.
  Server server(options());
  server.listen({.address = "127.0.0.1:0"}, greeter());
  server.start();
  for (int round = 0; round < 20; ++round) {
    auto client = connect_blocking(server.local_socket_address(0));
    ASSERT_TRUE(client);
    ASSERT_TRUE(send_all(client.get(), std::string(64 * 1024, 'a')));
    std::this_thread::sleep_for(20ms);  // let the reply and FIN arrive before reading
    int error = -1;
    EXPECT_EQ(read_until_eof(client.get(), &error), kHello) << "round " << round;
    EXPECT_EQ(error, 0) << "round " << round << ": " << strerror(error);
  }
  server.stop(1s);
  server.wait();
  EXPECT_EQ(server.cancelled_at_drain(), 0u);
}

TEST_P(ServerTest, APeerResettingMidWriteHarmsNobodyElse) {
  auto write_errors = std::make_shared<std::atomic<int>>(0);
  Server server(options());
  server.listen({.address = "127.0.0.1:0"}, [write_errors](Connection client) {
    return flood(std::move(client), write_errors);
  });
  const auto greeter_index = server.listen({.address = "127.0.0.1:0"}, greeter());
  server.start();
  for (int i = 0; i < 10; ++i) {
    auto client = connect_blocking(server.local_socket_address(0));
    ASSERT_TRUE(client);
    char some[4096];
    ssize_t received;
    do {  // a blocking read with a timeout returns EINTR rather than restart
      received = ::recv(client.get(), some, sizeof some, 0);
    } while (received < 0 && errno == EINTR);
    ASSERT_GT(received, 0) << "connection " << i << ": " << strerror(errno);
    // SO_LINGER 0: close sends RST while the server is writing.
    linger abort{1, 0};
    ::setsockopt(client.get(), SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
  }
  const TimePoint until = Clock::now() + 10s;
  while (write_errors->load() < 10 && Clock::now() < until)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(write_errors->load(), 10) << "each reset ends its write with an error";
  EXPECT_EQ(greet_once(server.local_socket_address(greeter_index), "hi"), kHello);
  EXPECT_TRUE(connections_drop_to_zero(server));
  server.stop(1s);
  server.wait();
}

TEST_P(ServerTest, StopLetsConnectionsInFlightFinish) {
  Server server(options());
  server.listen({.address = "127.0.0.1:0"}, slow_greet);
  server.start();
  const auto address = server.local_socket_address(0);
  std::vector<std::thread> clients;
  std::atomic<int> served = 0;
  for (int i = 0; i < 20; ++i) {
    clients.emplace_back([&] {
      if (greet_once(address, "hi") == kHello) served.fetch_add(1);
    });
  }
  std::this_thread::sleep_for(100ms);  // all connected, none answered yet
  const auto stopping = Clock::now();
  server.stop(5s);
  // New connections are refused at once.
  const auto refused_deadline = Clock::now() + 2s;
  bool refused = false;
  while (!refused && Clock::now() < refused_deadline) {
    auto late = connect_blocking(address, 1s);
    refused = !late;
    if (!refused) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(refused) << "the listener should close at stop()";
  server.wait();
  for (auto& client : clients)
    client.join();
  EXPECT_EQ(served.load(), 20);
  EXPECT_EQ(server.cancelled_at_drain(), 0u);
  EXPECT_LT(Clock::now() - stopping, 4s) << "the drain ends when the last connection does";
}

// Holds a one-shard server's thread up: the first connection's handler
// blocks the thread for a second before it greets, so that what arrives
// meanwhile waits in the kernel's accept queue.
class ShardHolder {
 public:
  Handler handler() const {
    return [blocking = blocking_](Connection client) -> Task<> {
      if (!blocking->exchange(true)) std::this_thread::sleep_for(1s);
      return greet(std::move(client), 5s);
    };
  }
  // Sends the first client to `address` (a listener with handler());
  // returns once its handler holds the shard.
  bool hold(const SocketAddress& address) {
    first_ = std::thread([address] { EXPECT_EQ(greet_once(address, "hi"), kHello); });
    const TimePoint until = Clock::now() + 5s;
    while (!blocking_->load() && Clock::now() < until)
      std::this_thread::sleep_for(1ms);
    return blocking_->load();
  }
  void join() { first_.join(); }

 private:
  std::shared_ptr<std::atomic<bool>> blocking_ = std::make_shared<std::atomic<bool>>(false);
  std::thread first_;
};

// `count` clients connected to `address`, each with its message sent.
std::vector<FileDescriptor> queue_clients(const SocketAddress& address, int count) {
  std::vector<FileDescriptor> clients;
  for (int i = 0; i < count; ++i) {
    FileDescriptor client = connect_blocking(address);
    if (!client || !send_all(client.get(), "hi")) break;
    clients.push_back(std::move(client));
  }
  return clients;
}

int greeted(std::vector<FileDescriptor>& clients) {
  int count = 0;
  for (auto& client : clients)
    count += read_until_eof(client.get()) == kHello ? 1 : 0;
  return count;
}

// Closing a listening socket resets every connection in its queue: stop()
// must take them and serve them first. The one shard is held up (a handler
// that blocks its thread) while clients connect and stop() is asked for,
// so that they are still queued when the stop reaches the shard. (That
// is so on epoll, where the test caught the fault. On io_uring the kernel
// goes on accepting for the armed multishot accept while the thread is
// held up, and the shard reaps them before it hears of the stop.)
TEST_P(ServerTest, StopServesTheConnectionsAlreadyQueued) {
  ShardHolder holder;
  Server server(options(1));
  server.listen({.address = "127.0.0.1:0"}, holder.handler());
  server.start();
  const auto address = server.local_socket_address(0);
  ASSERT_TRUE(holder.hold(address));
  auto queued = queue_clients(address, 20);
  ASSERT_EQ(queued.size(), 20u);
  server.stop(5s);  // reaches the shard when the handler lets go of it
  EXPECT_EQ(greeted(queued), 20) << "connections queued at stop() were reset";
  holder.join();
  server.wait();
  EXPECT_EQ(server.cancelled_at_drain(), 0u);
}

TEST_P(ServerTest, StopCancelsWhatIsLeftAtTheDrainDeadline) {
  auto cancelled_reads = std::make_shared<std::atomic<int>>(0);
  Server server(options());
  server.listen({.address = "127.0.0.1:0"}, [cancelled_reads](Connection client) {
    return wait_for_ever(std::move(client), cancelled_reads);
  });
  server.start();
  std::vector<FileDescriptor> idle;
  for (int i = 0; i < 50; ++i) {
    idle.push_back(connect_blocking(server.local_socket_address(0)));
    ASSERT_TRUE(idle.back());
  }
  const TimePoint until = Clock::now() + 5s;
  while (server.connection_count() < 50 && Clock::now() < until)
    std::this_thread::sleep_for(5ms);
  ASSERT_EQ(server.connection_count(), 50u);

  const auto stopping = Clock::now();
  server.stop(300ms);
  server.wait();
  const auto took = Clock::now() - stopping;
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 3s);
  EXPECT_EQ(server.cancelled_at_drain(), 50u);
  EXPECT_EQ(cancelled_reads->load(), 50);
  EXPECT_EQ(server.connection_count(), 0u);
  for (auto& client : idle) {
    int error = -1;
    read_until_eof(client.get(), &error);
    EXPECT_EQ(error, 0) << "closed, not left hanging";
  }
}

TEST_P(ServerTest, ListensOnIpv4Ipv6AndDualStackAtOnce) {
  auto mutex = std::make_shared<std::mutex>();
  auto peers = std::make_shared<std::vector<std::string>>();
  Handler recorder = [mutex, peers](Connection client) {
    return record_peer(std::move(client), mutex, peers);
  };
  Server server(options());
  const auto v4 = server.listen({.address = "127.0.0.1:0"}, recorder);
  const auto v6 = server.listen({.address = "[::1]:0"}, recorder);
  const auto dual = server.listen({.address = "[::]:0"}, recorder);
  server.start();
  EXPECT_EQ(greet_once(server.local_socket_address(v4), ""), kHello);
  EXPECT_EQ(greet_once(server.local_socket_address(v6), ""), kHello);
  auto dual_port = server.local_socket_address(dual).port();
  EXPECT_EQ(greet_once(*SocketAddress::from_ip("::1", dual_port), ""), kHello);
  EXPECT_EQ(greet_once(*SocketAddress::from_ip("127.0.0.1", dual_port), ""), kHello);
  server.stop(1s);
  server.wait();
  ASSERT_EQ(peers->size(), 4u);
  std::set<std::string> families;
  for (const auto& peer : *peers)
    families.insert(peer.starts_with("[::1]:") ? "v6" : peer.substr(0, 10));
  // The IPv4 client of the dual-stack listener shows as IPv4, not ::ffff:.
  EXPECT_EQ(families, (std::set<std::string>{"v6", "127.0.0.1:"}));
}

TEST_P(ServerTest, ListensOnAUnixSocket) {
  const std::string path = "/tmp/salam-test-" + std::to_string(::getpid()) + ".sock";
  Server server(options());
  server.listen({.address = "unix:" + path}, greeter());
  server.start();
  EXPECT_EQ(server.local_address(0), "unix:" + path);
  FileDescriptor client(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_TRUE(send_all(client.get(), "hi"));
  EXPECT_EQ(read_until_eof(client.get()), kHello);
  client.reset();
  server.stop(1s);
  server.wait();
  EXPECT_EQ(server.cancelled_at_drain(), 0u);
}

TEST_P(ServerTest, RefusesAnAddressInUseWithAClearMessage) {
  Server first(options());
  first.listen({.address = "127.0.0.1:0"}, greeter());
  const std::string taken = first.local_address(0);
  Server second(options());
  try {
    second.listen({.address = taken}, greeter());
    FAIL() << "a second listener on " << taken << " was allowed";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::address_in_use);
    EXPECT_NE(std::string(e.what()).find("cannot listen on " + taken), std::string::npos)
        << e.what();
  }
}

TEST_P(ServerTest, ServesOnAnInheritedSocketWithoutBinding) {
  // A listening socket made elsewhere, as systemd's socket activation hands over.
  FileDescriptor given(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  auto address = SocketAddress::parse("127.0.0.1:0");
  ASSERT_EQ(::bind(given.get(), address.data(), address.size()), 0);
  ASSERT_EQ(::listen(given.get(), 16), 0);
  socklen_t length = sizeof(sockaddr_in);
  ASSERT_EQ(::getsockname(given.get(), address.data(), &length), 0);
  const std::string where = address.to_string();

  Server server(options());
  // The address is in use (by the given socket): only adopting it can work.
  server.listen({.address = where, .inherited_fds = {given.release()}}, greeter());
  server.start();
  EXPECT_EQ(server.local_address(0), where);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(greet_once(address, "hi"), kHello);
  server.stop(1s);
  server.wait();

  // A socket that does not listen is refused, and closed.
  const int datagram = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  Server other(options());
  try {
    other.listen({.address = "127.0.0.1:9", .inherited_fds = {datagram}}, greeter());
    FAIL() << "a datagram socket was taken as a listener";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("not a listening stream socket"), std::string::npos);
  }
  EXPECT_EQ(::fcntl(datagram, F_GETFD), -1) << "the refused descriptor was closed";
}

// An SO_REUSEPORT group of `count` listening sockets on one port, as an
// upgrade hands them over.
std::vector<int> reuse_port_group(int count, SocketAddress& address) {
  std::vector<int> group;
  address = SocketAddress::parse("127.0.0.1:0");
  for (int i = 0; i < count; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on);
    EXPECT_EQ(::bind(fd, address.data(), address.size()), 0);
    EXPECT_EQ(::listen(fd, 1024), 0);
    socklen_t length = sizeof(sockaddr_in);
    ::getsockname(fd, address.data(), &length);  // the port the first was given
    group.push_back(fd);
  }
  return group;
}

TEST_P(ServerTest, ServesEverySocketOfAnInheritedGroupWhateverTheShardCount) {
  // More sockets than shards, as many, and fewer: connections the kernel
  // puts in any socket's queue must all be served.
  for (const auto& [sockets, shards] : {std::pair{3, 2}, {2, 2}, {2, 3}, {1, 3}}) {
    SCOPED_TRACE(::testing::Message() << sockets << " sockets, " << shards << " shards");
    SocketAddress address;
    std::vector<int> group = reuse_port_group(sockets, address);
    Server server(options(static_cast<unsigned>(shards)));
    server.listen({.address = address.to_string(), .inherited_fds = group}, greeter());
    EXPECT_EQ(server.listening_descriptors(0), group);
    server.start();
    // The kernel spreads connections over the group by a hash of the
    // client's port: 200 reach every socket.
    const auto stats = testing::run_exchanges(address, 200, 20, "hi", kHello, 20s);
    EXPECT_EQ(stats.ok, 200) << stats.first_problem;
    server.stop(1s);
    server.wait();
  }
}

// Closing a listener serves what each of its sockets has queued, also when
// one shard holds several of them (an inherited SO_REUSEPORT group larger
// than the shard count) and a taken connection ends before its handler
// first waits: its end walks the shard's acceptors while the listener's
// are being stopped (an emptied entry was once left there, and crashed).
TEST_P(ServerTest, ClosingAListenerServesWhatEachOfItsSocketsHasQueued) {
  ShardHolder holder;
  Server server(options(1));
  const auto held = server.listen({.address = "127.0.0.1:0"}, holder.handler());
  SocketAddress address;
  const std::vector<int> group = reuse_port_group(2, address);
  const auto closing =
      server.listen({.address = address.to_string(), .inherited_fds = group}, greeter());
  server.start();
  ASSERT_TRUE(holder.hold(server.local_socket_address(held)));
  // The kernel spreads them over both sockets by a hash of the client's
  // port.
  auto queued = queue_clients(address, 40);
  ASSERT_EQ(queued.size(), 40u);
  server.close_listener(closing);
  EXPECT_EQ(greeted(queued), 40);
  holder.join();
  EXPECT_EQ(greet_once(server.local_socket_address(held), "hi"), kHello) << "it serves on";
  server.stop(1s);
  server.wait();
}

// Answers once the client has sent something, so that a test can hold a
// connection that is accepted but not yet answered.
Task<> answer_with(Connection client, std::string reply) {
  auto request = co_await client.read(1024, 5s);
  if (request) co_await client.write_all(reply, 5s);
}

Handler answering(std::string reply) {
  return [reply](Connection client) { return answer_with(std::move(client), reply); };
}

TEST_P(ServerTest, ListenersCanBeAddedReplacedAndClosedWhileRunning) {
  Server server(options());
  const auto first = server.listen({.address = "127.0.0.1:0"}, answering("one"));
  server.start();
  const auto first_address = server.local_socket_address(first);
  EXPECT_EQ(greet_once(first_address, "x"), "one");

  // A listener added at run time serves at once, on every shard.
  const auto second = server.listen({.address = "127.0.0.1:0"}, answering("two"));
  const auto second_address = server.local_socket_address(second);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(greet_once(second_address, "x"), "two");

  // A connection in progress keeps its handler when the listener gets a
  // new one; new connections get the new one (once every shard has it).
  ASSERT_TRUE(connections_drop_to_zero(server));
  auto held = connect_blocking(first_address);
  ASSERT_TRUE(held);
  // Connected is not yet accepted: wait until its handler runs.
  const TimePoint accepted_by = Clock::now() + 5s;
  while (server.connection_count() == 0 && Clock::now() < accepted_by) {
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_EQ(server.connection_count(), 1u);
  server.replace_handler(first, [] { return answering("uno"); });
  const TimePoint until = Clock::now() + 5s;
  int uno_in_a_row = 0;
  while (uno_in_a_row < 10 && Clock::now() < until) {
    uno_in_a_row = greet_once(first_address, "x") == "uno" ? uno_in_a_row + 1 : 0;
  }
  EXPECT_EQ(uno_in_a_row, 10);
  ASSERT_TRUE(send_all(held.get(), "x"));
  EXPECT_EQ(read_until_eof(held.get()), "one");
  held.reset();

  // A closed listener refuses; the others go on.
  server.close_listener(second);
  const TimePoint refuse_by = Clock::now() + 5s;
  bool refused = false;
  while (!refused && Clock::now() < refuse_by) {
    refused = !connect_blocking(second_address, 1s);
    if (!refused) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(refused);
  EXPECT_EQ(greet_once(first_address, "x"), "uno");

  // A listener opened after that one closed gets its descriptor number:
  // the shards must watch it afresh (a stale "already registered" on epoll
  // once left such a listener deaf).
  const auto third = server.listen({.address = "127.0.0.1:0"}, answering("three"));
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(greet_once(server.local_socket_address(third), "x"), "three");
  }
  server.stop(1s);
  server.wait();
}

// Listeners opened and closed again and again, as reloads do, take no
// memory for good: a closed listener lets go of its handler factory (and
// what that holds), and its slot is taken by the next listener.
TEST_P(ServerTest, ClosedListenersLeaveNothingBehind) {
  Server server(options());
  server.listen({.address = "127.0.0.1:0"}, greeter());
  server.start();
  auto held = std::make_shared<int>(0);
  std::size_t first_index = 0;
  for (int round = 0; round < 20; ++round) {
    const auto index =
        server.listen({.address = "127.0.0.1:0"}, [held] { return answering("again"); });
    if (round == 0) first_index = index;
    EXPECT_EQ(index, first_index) << "a closed listener's slot is taken again";
    EXPECT_EQ(greet_once(server.local_socket_address(index), "x"), "again");
    server.close_listener(index);
    // The shards let go of their copies when they hear of the close.
    const TimePoint until = Clock::now() + 5s;
    while (held.use_count() > 1 && Clock::now() < until)
      std::this_thread::sleep_for(1ms);
    EXPECT_EQ(held.use_count(), 1) << "the closed listener still holds its factory";
  }
  server.stop(1s);
  server.wait();
}

SALAM_INSTANTIATE_FOR_BACKENDS(ServerTest);

}  // namespace
}  // namespace salam
