#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <salam/log.hpp>
#include <salam/server.hpp>

#include "listen_socket.hpp"
#include "shard.hpp"

namespace salam {

namespace {

unsigned available_cpus() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    int count = CPU_COUNT(&set);
    if (count > 0) return static_cast<unsigned>(count);
  }
  unsigned hardware = std::thread::hardware_concurrency();
  return hardware > 0 ? hardware : 1;
}

// salam sends with MSG_NOSIGNAL, but a log written to a closed pipe would
// still raise SIGPIPE: ignore it unless the program chose otherwise.
void ignore_sigpipe() noexcept {
  struct sigaction current {};
  if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
    std::signal(SIGPIPE, SIG_IGN);
  }
}

}  // namespace

struct Server::Impl {
  struct Listener {
    detail::ListenAddress address;
    HandlerFactory factory;
    // One socket shared by all shards, or one per shard (SO_REUSEPORT; one
    // in all for a single shard), or the group the program was given;
    // handed to the shards at start and dropped here.
    std::vector<std::shared_ptr<FileDescriptor>> sockets;
    std::vector<int> descriptors;  // their numbers, while the listener is open
    std::string local;
    SocketAddress local_ip;
    bool closed = false;
    bool inherited = false;  // given, not bound
    bool keep_file = false;  // its Unix socket's file is not ours to remove

    // Shard `shard`'s share of the sockets, of `total` in all. With as
    // many sockets as shards or more, each socket goes to one shard (shard
    // i takes i, i + total, ...); with fewer, the shards share them
    // round-robin.
    detail::ShardListener for_shard(std::size_t id, unsigned shard, unsigned total) const {
      detail::ShardListener out{id, {}, factory};
      const std::size_t count = sockets.size();
      if (count >= total) {
        for (std::size_t j = shard; j < count; j += total)
          out.sockets.push_back({sockets[j], false});
      } else {
        const std::size_t j = shard % count;
        const std::size_t sharing = (total - j + count - 1) / count;
        out.sockets.push_back({sockets[j], sharing > 1});
      }
      return out;
    }
  };

  ServerOptions options;
  unsigned shard_count = 1;
  std::vector<std::unique_ptr<Listener>> listeners;
  std::vector<ShardTask> shard_tasks;
  std::vector<std::unique_ptr<detail::Shard>> shards;
  std::vector<std::thread> threads;
  std::mutex mutex;       // listeners, shards and threads
  std::mutex join_mutex;  // wait(): joining the threads
  bool started = false;
  bool joined = false;
  std::atomic<unsigned> running_shards = 0;

  ~Impl() {
    // Closed listeners removed their paths already (someone else may have
    // bound them since).
    for (const auto& listener : listeners) {
      if (!listener->closed && !listener->keep_file && !listener->address.unix_path.empty()) {
        ::unlink(listener->address.unix_path.c_str());
      }
    }
  }
};

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>()) {
  ignore_sigpipe();
  std::string why_not;
  options.loop.backend = resolve_backend(options.loop.backend, &why_not);
  if (!why_not.empty()) log::info("using epoll: {}", why_not);
  impl_->shard_count = options.threads > 0 ? options.threads : available_cpus();
  impl_->options = std::move(options);
}

Server::~Server() {
  stop(Duration::zero());
  wait();
}

std::size_t Server::listen(const ListenOptions& options, Handler handler) {
  return listen(options, HandlerFactory([handler = std::move(handler)] { return handler; }));
}

std::size_t Server::listen(const ListenOptions& options, HandlerFactory factory) {
  std::lock_guard lock(impl_->mutex);
  auto listener = std::make_unique<Impl::Listener>();
  listener->address = detail::ListenAddress::parse(options.address);
  listener->factory = std::move(factory);

  ListenOptions effective = options;
  bool clamped = false;
  effective.backlog = detail::effective_backlog(options.backlog, clamped);
  if (clamped) {
    log::warning("listen backlog {} for {} clamped to net.core.somaxconn = {}", options.backlog,
                 listener->address.to_string(), effective.backlog);
  }
  if (!options.inherited_fds.empty()) {
    listener->inherited = true;
    listener->keep_file = !options.owns_inherited_file;
    // Each is owned from here on, even if one of them is refused.
    std::vector<FileDescriptor> given;
    for (const int fd : options.inherited_fds)
      given.emplace_back(fd);
    for (auto& fd : given) {
      listener->sockets.push_back(
          std::make_shared<FileDescriptor>(detail::adopt_listen_socket(fd.release())));
    }
  }
  // SO_REUSEPORT groups are for IP sockets; a Unix listener is shared.
  const bool per_shard =
      options.reuse_port && listener->address.ip.has_value() && !listener->inherited;
  detail::ListenAddress bind_address = listener->address;
  if (per_shard) detail::check_address_free(bind_address, effective);
  const unsigned count = per_shard ? impl_->shard_count : 1;
  for (unsigned i = 0; i < count; ++i) {
    if (!listener->inherited) {
      listener->sockets.push_back(std::make_shared<FileDescriptor>(
          detail::open_listen_socket(bind_address, effective, per_shard)));
    }
    if (i == 0 && bind_address.ip) {
      // Port 0 picks a port; the other sockets of the group must take the same.
      sockaddr_storage raw{};
      socklen_t length = sizeof raw;
      ::getsockname(listener->sockets[0]->get(), reinterpret_cast<sockaddr*>(&raw), &length);
      if (auto bound = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&raw), length)) {
        bind_address.ip = *bound;
        listener->local_ip = *bound;
      }
    }
  }
  listener->local = bind_address.to_string();
  for (const auto& socket : listener->sockets)
    listener->descriptors.push_back(socket->get());
  // A closed listener's slot is taken again, so that listeners opened and
  // closed by reload after reload take no memory for good. Each shard hears
  // of the removal before the addition (its queue is in order).
  auto free_slot = std::find_if(impl_->listeners.begin(), impl_->listeners.end(),
                                [](const auto& slot) { return slot->closed; });
  const auto id = static_cast<std::size_t>(free_slot - impl_->listeners.begin());
  if (impl_->started) {
    for (unsigned shard = 0; shard < impl_->shard_count; ++shard) {
      impl_->shards[shard]->request_add(listener->for_shard(id, shard, impl_->shard_count));
    }
    listener->sockets.clear();
    log::info("listening on {}", listener->local);
  }
  if (free_slot == impl_->listeners.end()) {
    impl_->listeners.push_back(std::move(listener));
  } else {
    *free_slot = std::move(listener);
  }
  return id;
}

void Server::close_listener(std::size_t index) {
  std::lock_guard lock(impl_->mutex);
  auto& listener = *impl_->listeners.at(index);
  if (listener.closed) return;
  listener.closed = true;
  listener.sockets.clear();
  listener.descriptors.clear();
  listener.factory = {};  // and what its handlers hold
  for (auto& shard : impl_->shards)
    shard->request_remove(index);
  if (!listener.address.unix_path.empty() && !listener.keep_file) {
    ::unlink(listener.address.unix_path.c_str());
  }
  log::info("stopped listening on {}", listener.local);
}

void Server::replace_handler(std::size_t index, HandlerFactory factory) {
  std::lock_guard lock(impl_->mutex);
  auto& listener = *impl_->listeners.at(index);
  listener.factory = factory;
  for (auto& shard : impl_->shards)
    shard->request_replace(index, factory);
}

std::vector<int> Server::listening_descriptors(std::size_t index) const {
  std::lock_guard lock(impl_->mutex);
  return impl_->listeners.at(index)->descriptors;
}

void Server::keep_socket_files() noexcept {
  std::lock_guard lock(impl_->mutex);
  for (auto& listener : impl_->listeners)
    listener->keep_file = true;  // the file is another process's now
}

std::string Server::local_address(std::size_t index) const {
  return impl_->listeners.at(index)->local;
}

SocketAddress Server::local_socket_address(std::size_t index) const {
  return impl_->listeners.at(index)->local_ip;
}

void Server::on_each_shard(ShardTask task) {
  std::lock_guard lock(impl_->mutex);
  if (impl_->started) throw std::logic_error("Server::on_each_shard after start()");
  impl_->shard_tasks.push_back(std::move(task));
}

void Server::start() {
  std::lock_guard lock(impl_->mutex);
  if (impl_->started) return;
  impl_->started = true;

  std::vector<std::promise<void>> started(impl_->shard_count);
  for (unsigned index = 0; index < impl_->shard_count; ++index) {
    std::vector<detail::ShardListener> listeners;
    for (std::size_t id = 0; id < impl_->listeners.size(); ++id) {
      const auto& listener = *impl_->listeners[id];
      if (!listener.closed) listeners.push_back(listener.for_shard(id, index, impl_->shard_count));
    }
    impl_->shards.push_back(std::make_unique<detail::Shard>(
        index, impl_->shard_count, impl_->options, std::move(listeners), impl_->shard_tasks));
  }
  // The sockets now belong to the shards' acceptors: when they stop, the
  // sockets close.
  for (const auto& listener : impl_->listeners)
    listener->sockets.clear();

  impl_->running_shards = impl_->shard_count;
  for (unsigned index = 0; index < impl_->shard_count; ++index) {
    impl_->threads.emplace_back([this, index, &started] {
      std::string name = "salam-shard-" + std::to_string(index);
      ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
      impl_->shards[index]->run(started[index]);
      impl_->running_shards.fetch_sub(1);
    });
  }
  std::exception_ptr failure;
  for (auto& promise : started) {
    try {
      promise.get_future().get();
    } catch (...) {
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) {
    for (auto& shard : impl_->shards)
      shard->request_stop(Clock::now());
    for (auto& thread : impl_->threads)
      thread.join();
    impl_->joined = true;
    std::rethrow_exception(failure);
  }
  const std::string backend(to_string(impl_->options.loop.backend));
  for (const auto& listener : impl_->listeners) {
    if (listener->closed || !impl_->options.log_listening) continue;
    log::info("listening on {} ({} shard{}, {})", listener->local, impl_->shard_count,
              impl_->shard_count == 1 ? "" : "s", backend);
  }
}

void Server::stop(Duration drain_timeout) noexcept {
  std::lock_guard lock(impl_->mutex);
  const TimePoint deadline = Clock::now() + drain_timeout;
  for (auto& shard : impl_->shards)
    shard->request_stop(deadline);
}

void Server::wait() {
  // Not under `mutex`: stop() from another thread takes it, and must get
  // it while this thread waits for the shards.
  std::lock_guard lock(impl_->join_mutex);
  if (impl_->joined) return;
  for (auto& thread : impl_->threads) {
    if (thread.joinable()) thread.join();
  }
  impl_->joined = true;
}

bool Server::running() const noexcept {
  return impl_->running_shards.load() > 0;
}

unsigned Server::shard_count() const noexcept {
  return impl_->shard_count;
}

BackendKind Server::backend() const noexcept {
  return impl_->options.loop.backend;
}

std::size_t Server::connection_count() const noexcept {
  // The shards are made by start(), which another thread may be running.
  std::lock_guard lock(impl_->mutex);
  std::size_t total = 0;
  for (const auto& shard : impl_->shards)
    total += shard->open_connections();
  return total;
}

std::vector<std::uint64_t> Server::accepted_per_shard() const {
  // The shards are made by start(), which another thread may be running.
  std::lock_guard lock(impl_->mutex);
  std::vector<std::uint64_t> counts;
  for (const auto& shard : impl_->shards)
    counts.push_back(shard->accepted());
  return counts;
}

AcceptErrors Server::accept_errors() const noexcept {
  // The shards are made by start(), which another thread may be running.
  std::lock_guard lock(impl_->mutex);
  AcceptErrors total;
  for (const auto& shard : impl_->shards) {
    const AcceptErrors errors = shard->accept_errors();
    total.descriptors += errors.descriptors;
    total.memory += errors.memory;
    total.other += errors.other;
  }
  return total;
}

std::size_t Server::cancelled_at_drain() const noexcept {
  // The shards are made by start(), which another thread may be running.
  std::lock_guard lock(impl_->mutex);
  std::size_t total = 0;
  for (const auto& shard : impl_->shards)
    total += shard->cancelled_at_drain();
  return total;
}

namespace {

long long milliseconds(Duration duration) noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(duration).count();
}

// Waits until `deadline`, while the server runs, for SIGINT or SIGTERM
// among `signals`; whether one came. The others are taken and ignored, with
// a line: a stop is under way.
bool second_signal_before(const sigset_t& signals, Deadline deadline, const Server& server) {
  for (;;) {
    const Duration left = deadline.at() - Clock::now();
    if (left <= Duration::zero() || !server.running()) return false;
    // At most 50 ms at a time, to notice the server's end.
    const long step_ns =
        static_cast<long>(std::min<Duration>(left, std::chrono::milliseconds(50)).count());
    const timespec step{0, step_ns};
    const int received = ::sigtimedwait(&signals, nullptr, &step);
    if (received == SIGINT || received == SIGTERM) {
      log::info("second signal: closing all connections now");
      return true;
    }
    if (received > 0) {
      log::info("{}: ignored, the server is stopping", ::strsignal(received));
      log::flush_thread_buffer();
    }
  }
}

}  // namespace

int run_until_signal(Server& server, Duration drain_timeout,
                     const std::function<void()>& on_hangup) {
  return run_until_signal(server, drain_timeout, SignalHooks{{}, on_hangup, {}, {}, {}});
}

int run_until_signal(Server& server, Duration drain_timeout, const SignalHooks& hooks) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  if (hooks.upgrade) sigaddset(&signals, SIGUSR2);
  sigset_t previous;
  // Blocked before the shards start, so that their threads inherit the
  // mask and the signals come here.
  ::pthread_sigmask(SIG_BLOCK, &signals, &previous);
  try {
    server.start();
  } catch (...) {
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    throw;
  }
  if (hooks.started) hooks.started();

  int signal_number = 0;
  for (;;) {
    if (::sigwait(&signals, &signal_number) != 0) continue;
    if (signal_number == SIGHUP) {
      if (hooks.hangup) hooks.hangup();
    } else if (signal_number == SIGUSR2) {
      const bool replaced = hooks.upgrade();
      log::flush_thread_buffer();
      if (replaced) break;
    } else {
      break;
    }
    log::flush_thread_buffer();
  }
  const bool upgraded = signal_number == SIGUSR2;
  const char* const why = upgraded ? "upgraded" : ::strsignal(signal_number);
  if (hooks.stopping) hooks.stopping();
  const StopPlan plan = hooks.plan ? hooks.plan() : StopPlan{Duration::zero(), drain_timeout};
  Duration drain = plan.drain;
  // After an upgrade the other process accepts already: no grace.
  if (!upgraded && plan.grace > Duration::zero()) {
    log::info("{}: still accepting for {} ms, then stopping", why, milliseconds(plan.grace));
    log::flush_thread_buffer();
    if (second_signal_before(signals, Deadline(plan.grace), server)) drain = Duration::zero();
  }
  if (server.running()) {
    log::info("{}: stopping; connections have {} ms to finish", why, milliseconds(drain));
  } else {
    log::warning("{}: the server ended during the grace", why);
  }
  log::flush_thread_buffer();
  server.stop(drain);

  while (second_signal_before(signals, Deadline::never(), server))
    server.stop(Duration::zero());
  server.wait();
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  // The stop was asked for and done: cutting what outlived the drain is
  // part of it, so it is worth a warning, not a failure.
  if (const std::size_t cut = server.cancelled_at_drain(); cut > 0) {
    log::warning("the drain deadline closed {} connection{} that had not finished", cut,
                 cut == 1 ? "" : "s");
    log::flush_thread_buffer();
  }
  return 0;
}

}  // namespace salam
