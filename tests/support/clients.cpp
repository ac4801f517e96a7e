#include "clients.hpp"

#include <cerrno>
#include <fstream>
#include <sstream>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

namespace salam::testing {

void raise_descriptor_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

FileDescriptor connect_blocking(const SocketAddress& target, Duration timeout) {
  FileDescriptor socket(::socket(target.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!socket) return socket;
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
  timeval tv{static_cast<time_t>(micros / 1'000'000), static_cast<suseconds_t>(micros % 1'000'000)};
  ::setsockopt(socket.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(socket.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(socket.get(), target.data(), target.size()) == 0) return socket;
  if (errno != EINTR) {
    socket.reset();
    return socket;
  }
  // A signal cut the wait short (a blocking connect with a timeout returns
  // EINTR rather than restart), but the handshake goes on: wait for it.
  pollfd ready{socket.get(), POLLOUT, 0};
  int error = 0;
  socklen_t length = sizeof error;
  if (::poll(&ready, 1, static_cast<int>(micros / 1000)) != 1 ||
      ::getsockopt(socket.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0) {
    errno = error != 0 ? error : ETIMEDOUT;
    socket.reset();
  }
  return socket;
}

std::string read_until_eof(int fd, int* error) {
  std::string received;
  char chunk[4096];
  for (;;) {
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n > 0) {
      received.append(chunk, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (error) *error = n == 0 ? 0 : errno;
    return received;
  }
}

bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::string greet_once(const SocketAddress& target, std::string_view message, int* error) {
  FileDescriptor socket = connect_blocking(target);
  if (!socket) {
    if (error) *error = errno;
    return {};
  }
  if (!send_all(socket.get(), message)) {
    if (error) *error = errno;
    return {};
  }
  return read_until_eof(socket.get(), error);
}

namespace {

struct Exchange {
  enum class State { idle, connecting, reading } state = State::idle;
  FileDescriptor socket;
  std::string received;
};

}  // namespace

ExchangeStats run_exchanges(const SocketAddress& target, int count, int concurrency,
                            std::string_view message, std::string_view expected, Duration timeout) {
  ExchangeStats stats;
  std::vector<Exchange> slots(static_cast<std::size_t>(concurrency));
  std::vector<pollfd> polls(slots.size());
  int started = 0;
  int finished = 0;
  const TimePoint deadline = Clock::now() + timeout;

  auto fail = [&](Exchange& exchange, std::string why) {
    ++stats.failed;
    if (stats.first_problem.empty()) stats.first_problem = std::move(why);
    exchange.socket.reset();
    exchange.state = Exchange::State::idle;
    ++finished;
  };
  auto start = [&](Exchange& exchange) {
    exchange.received.clear();
    exchange.socket.reset(::socket(target.family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    ++started;
    if (!exchange.socket) return fail(exchange, "socket: " + std::string(strerror(errno)));
    if (::connect(exchange.socket.get(), target.data(), target.size()) != 0 &&
        errno != EINPROGRESS) {
      return fail(exchange, "connect: " + std::string(strerror(errno)));
    }
    exchange.state = Exchange::State::connecting;
  };

  while (finished < count) {
    if (Clock::now() > deadline) {
      for (auto& exchange : slots) {
        if (exchange.state != Exchange::State::idle) fail(exchange, "timed out");
      }
      stats.failed += count - started;
      break;
    }
    for (std::size_t i = 0; i < slots.size(); ++i) {
      if (slots[i].state == Exchange::State::idle && started < count) start(slots[i]);
      polls[i].fd = slots[i].state == Exchange::State::idle ? -1 : slots[i].socket.get();
      polls[i].events = slots[i].state == Exchange::State::connecting ? POLLOUT : POLLIN;
      polls[i].revents = 0;
    }
    if (::poll(polls.data(), polls.size(), 100) < 0 && errno != EINTR) break;
    for (std::size_t i = 0; i < slots.size(); ++i) {
      Exchange& exchange = slots[i];
      if (polls[i].fd < 0 || polls[i].revents == 0) continue;
      if (exchange.state == Exchange::State::connecting) {
        int error = 0;
        socklen_t length = sizeof error;
        ::getsockopt(exchange.socket.get(), SOL_SOCKET, SO_ERROR, &error, &length);
        if (error != 0) {
          fail(exchange, "connect: " + std::string(strerror(error)));
          continue;
        }
        // Short messages fit in an empty socket buffer: one send does it.
        if (::send(exchange.socket.get(), message.data(), message.size(), MSG_NOSIGNAL) !=
            static_cast<ssize_t>(message.size())) {
          fail(exchange, "send: " + std::string(strerror(errno)));
          continue;
        }
        exchange.state = Exchange::State::reading;
        continue;
      }
      char chunk[4096];
      ssize_t n = ::recv(exchange.socket.get(), chunk, sizeof chunk, 0);
      if (n > 0) {
        exchange.received.append(chunk, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n < 0) {
        fail(exchange, "recv: " + std::string(strerror(errno)));
        continue;
      }
      if (exchange.received == expected) {
        ++stats.ok;
      } else {
        ++stats.wrong_reply;
        if (stats.first_problem.empty())
          stats.first_problem = "wrong reply: '" + exchange.received + "'";
      }
      exchange.socket.reset();
      exchange.state = Exchange::State::idle;
      ++finished;
    }
  }
  return stats;
}

Duration process_cpu_time(int pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces) start after ')'.
  auto close = text.rfind(')');
  if (close == std::string::npos) return Duration::zero();
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  long long utime = 0;
  long long stime = 0;
  for (int index = 3; fields >> field; ++index) {
    if (index == 14) utime = std::stoll(field);
    if (index == 15) {
      stime = std::stoll(field);
      break;
    }
  }
  const long ticks = ::sysconf(_SC_CLK_TCK);
  return std::chrono::nanoseconds((utime + stime) * 1'000'000'000LL / ticks);
}

}  // namespace salam::testing
