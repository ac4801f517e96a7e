// A connected pair for engine tests: `connection` on a loop, `peer` a plain
// blocking socket the test drives by hand.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <salam/connection.hpp>
#include <salam/loop.hpp>
#include <salam/socket.hpp>

#include "engine.hpp"

namespace salam::testing {

struct Pair {
  Connection connection;
  FileDescriptor peer;
};

inline Pair make_pair(Loop& loop) {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  if (detail::Engine::socket_flags(loop) != 0) {
    int flags = ::fcntl(fds[0], F_GETFL);
    ::fcntl(fds[0], F_SETFL, flags | O_NONBLOCK);
  }
  return Pair{Connection(loop, FileDescriptor(fds[0])), FileDescriptor(fds[1])};
}

}  // namespace salam::testing
