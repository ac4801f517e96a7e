// Running out of descriptors: with its limit lowered (setrlimit in the
// child) and more clients than descriptors, the server must neither spin
// nor die, and must serve new clients once descriptors are free again.
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <salam/salam.hpp>

#include "../support/backends.hpp"
#include "../support/clients.hpp"
#include "../support/process.hpp"

namespace salam {
namespace {

using namespace std::chrono_literals;

class DescriptorLimitTest : public ::testing::TestWithParam<BackendKind> {
 protected:
  void SetUp() override {
    SALAM_REQUIRE_BACKEND(GetParam());
    testing::raise_descriptor_limit();
  }
};

std::size_t open_descriptors(pid_t pid) {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
    ++count;
  return count;
}

// Whether the server's descriptor count settles at `baseline` (three
// samples 50 ms apart) within `limit`.
bool back_to(pid_t pid, std::size_t baseline, Duration limit) {
  const TimePoint until = Clock::now() + limit;
  int in_a_row = 0;
  while (Clock::now() < until) {
    in_a_row = open_descriptors(pid) == baseline ? in_a_row + 1 : 0;
    if (in_a_row == 3) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

// Clients the server has closed (shed) without serving: readable at once,
// with end of file or a reset.
int closed_by_server(const std::vector<FileDescriptor>& clients) {
  int closed = 0;
  for (const auto& client : clients) {
    pollfd ready{client.get(), POLLIN, 0};
    if (::poll(&ready, 1, 0) != 1) continue;
    char byte;
    if (::recv(client.get(), &byte, 1, MSG_DONTWAIT) <= 0) ++closed;
  }
  return closed;
}

// Two shards, out of descriptors three times over: every time the server
// neither spins nor dies, sheds pending connections through its reserve
// descriptors, and recovers with every descriptor it had before. (A
// reserve whose number another shard took while it was closed used to be
// lost for good, and shedding with it.)
TEST_P(DescriptorLimitTest, ShedsAndRecoversEveryTime) {
  testing::ChildProcess server({GREET_SERVER_PATH, "--backend", std::string(to_string(GetParam())),
                                "--threads", "2", "--nofile", "64", "--read-timeout-ms", "30000"});
  const std::string line = server.read_line(10s);
  ASSERT_TRUE(line.starts_with("port "))
      << "server said: '" << line << "' " << server.drain_stderr();
  const auto address =
      *SocketAddress::from_ip("127.0.0.1", static_cast<std::uint16_t>(std::stoi(line.substr(5))));
  // Enough connections that both shards have served some, then the count
  // at rest.
  for (int i = 0; i < 50; ++i)
    ASSERT_EQ(testing::greet_once(address, "hi"), "Hello, client!");
  std::this_thread::sleep_for(200ms);
  const std::size_t baseline = open_descriptors(server.pid());

  for (int round = 1; round <= 3; ++round) {
    SCOPED_TRACE("exhaustion " + std::to_string(round));
    // 150 silent clients: more than the 64 descriptors the server may hold.
    std::vector<FileDescriptor> clients;
    for (int i = 0; i < 150; ++i) {
      clients.push_back(testing::connect_blocking(address, 5s));
      ASSERT_TRUE(clients.back()) << "connect " << i << ": " << strerror(errno);
    }
    std::this_thread::sleep_for(300ms);
    ASSERT_TRUE(server.alive());

    // Over one second of stall, a spinning accept loop would burn about a
    // second of CPU; a paused one nearly none. Tolerance: 250 ms, for a
    // noisy machine.
    const Duration before = testing::process_cpu_time(server.pid());
    std::this_thread::sleep_for(1s);
    const Duration used = testing::process_cpu_time(server.pid()) - before;
    EXPECT_LT(used, 250ms) << "the server burns CPU while out of descriptors";
    EXPECT_TRUE(server.alive());
    // Each pause sheds a pending client; there were over 80 pending and
    // more than a second of pauses.
    EXPECT_GT(closed_by_server(clients), 0) << "no pending connection was shed";
    if (round == 1) {
      EXPECT_NE(server.drain_stderr().find("Too many open files"), std::string::npos)
          << "the test did not make the server run out of descriptors";
    }

    // Free the descriptors: the held connections see EOF and end.
    clients.clear();
    const TimePoint until = Clock::now() + 10s;
    std::string reply;
    while (reply != "Hello, client!" && Clock::now() < until) {
      reply = testing::greet_once(address, "hi");
      if (reply.empty()) std::this_thread::sleep_for(50ms);
    }
    EXPECT_EQ(reply, "Hello, client!") << "the server did not recover";
    // One greeting served is not yet rest: the closed clients still queued
    // on either shard's listener are accepted (each holding a descriptor
    // until its end of file is read), and while they are, the process can
    // be out of descriptors again and rightly shed a live client. At rest
    // means back at the baseline, three samples in a row.
    EXPECT_TRUE(back_to(server.pid(), baseline, 10s))
        << "descriptors before the exhaustion and after it: " << baseline << " and "
        << open_descriptors(server.pid());
    for (int i = 0; i < 20; ++i)
      EXPECT_EQ(testing::greet_once(address, "hi"), "Hello, client!");
    // The last connections close a moment after their replies.
    EXPECT_TRUE(back_to(server.pid(), baseline, 5s))
        << "descriptors after serving again: " << open_descriptors(server.pid());
  }
  EXPECT_EQ(server.stop(SIGTERM, 10s), 0) << server.drain_stderr();
}

SALAM_INSTANTIATE_FOR_BACKENDS(DescriptorLimitTest);

}  // namespace
}  // namespace salam
