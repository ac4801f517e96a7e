// A TCP connection over loopback for tests of code above Connection: one
// end a Connection on the loop, the other a plain blocking socket that the
// test writes and reads with system calls (and so shares no code with
// libsalam). The peer has TCP_NODELAY, so each send leaves as it is.
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <salam/address.hpp>
#include <salam/connection.hpp>
#include <salam/loop.hpp>
#include <salam/socket.hpp>

#include "engine.hpp"

namespace salam::testing {

struct LoopbackPair {
  Connection connection;
  FileDescriptor peer;
};

inline LoopbackPair loopback_pair(Loop& loop) {
  FileDescriptor listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  auto address = SocketAddress::parse("127.0.0.1:0");
  EXPECT_EQ(::bind(listener.get(), address.data(), address.size()), 0);
  EXPECT_EQ(::listen(listener.get(), 1), 0);
  socklen_t length = sizeof(sockaddr_in);
  EXPECT_EQ(::getsockname(listener.get(), address.data(), &length), 0);
  FileDescriptor peer(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(::connect(peer.get(), address.data(), address.size()), 0);
  int one = 1;
  EXPECT_EQ(::setsockopt(peer.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), 0);
  const int accepted = ::accept4(listener.get(), nullptr, nullptr,
                                 SOCK_CLOEXEC | detail::Engine::socket_flags(loop));
  EXPECT_GE(accepted, 0);
  return LoopbackPair{Connection(loop, FileDescriptor(accepted)), std::move(peer)};
}

}  // namespace salam::testing
