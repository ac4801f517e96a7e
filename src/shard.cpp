#include "shard.hpp"

#include <exception>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <salam/log.hpp>

#include "acceptor.hpp"

namespace salam::detail {

namespace {

FileDescriptor open_reserve() noexcept {
  return FileDescriptor(::open("/dev/null", O_RDONLY | O_CLOEXEC));
}

}  // namespace

Shard::Shard(unsigned index, const ServerOptions& options, std::vector<ShardListener> listeners)
    : index_(index), options_(options), listeners_(std::move(listeners)) {}

Shard::~Shard() = default;

void Shard::run(std::promise<void>& started) noexcept {
  try {
    loop_.emplace(options_.loop);
    connections_.emplace();
    stop_requested_.emplace(*loop_);
    drain_progress_.emplace(*loop_);
    connections_->on_idle([this] { drain_progress_->set(); });
    reserve_ = open_reserve();
    for (const ShardListener& listener : listeners_) {
      acceptors_.push_back(std::make_unique<Acceptor>(*this, listener.socket, *listener.handler));
    }
    listeners_.clear();  // the acceptors hold the sockets now
    std::lock_guard lock(loop_mutex_);
    loop_alive_ = true;
  } catch (...) {
    acceptors_.clear();
    drain_progress_.reset();
    stop_requested_.reset();
    connections_.reset();
    loop_.reset();
    started.set_exception(std::current_exception());
    return;
  }
  started.set_value();

  try {
    loop_->run(main());
  } catch (const std::exception& e) {
    log::critical("shard {} failed: {}", index_, e.what());
  }

  {
    std::lock_guard lock(loop_mutex_);
    loop_alive_ = false;
  }
  drain_progress_.reset();
  stop_requested_.reset();
  connections_.reset();
  loop_.reset();  // reaps what is still in flight, so it goes before the acceptors
  acceptors_.clear();
  reserve_.reset();
}

Task<> Shard::main() {
  for (auto& acceptor : acceptors_)
    acceptor->start();
  co_await stop_requested_->wait();

  for (auto& acceptor : acceptors_)
    acceptor->stop();
  while (connections_->active() > 0) {
    if (Clock::now() >= drain_deadline_) {
      const std::size_t left = connections_->active();
      cancelled_at_drain_.store(left, std::memory_order_relaxed);
      log::warning("shard {}: {} connection(s) still open at the drain deadline; closing them",
                   index_, left);
      loop_->cancel_all();
      break;
    }
    drain_progress_->reset();
    co_await drain_progress_->wait(Deadline(drain_deadline_));
  }
  co_await connections_->join();
}

void Shard::request_stop(TimePoint drain_deadline) {
  std::lock_guard lock(loop_mutex_);
  if (!loop_alive_) return;
  loop_->post([this, drain_deadline] { begin_stop(drain_deadline); });
}

void Shard::begin_stop(TimePoint drain_deadline) noexcept {
  drain_deadline_ = std::min(drain_deadline_, drain_deadline);
  stop_requested_->set();
  drain_progress_->set();  // re-check against the (maybe nearer) deadline
}

void Shard::serve(FileDescriptor socket, const Handler& handler) noexcept {
  // Only this thread writes the count; others read it.
  open_connections_.store(open_connections_.load(std::memory_order_relaxed) + 1,
                          std::memory_order_relaxed);
  try {
    connections_->spawn(handler(Connection(*loop_, std::move(socket), std::nullopt, this)));
  } catch (const std::exception& e) {
    // The connection, if it was built, closed itself on the way out.
    log::error("connection handler could not start: {}", e.what());
  }
}

void Shard::shed_one(int listener) noexcept {
  reserve_.reset();
  int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd >= 0) ::close(fd);
  reserve_ = open_reserve();
}

void Shard::connection_closed() noexcept {
  open_connections_.store(open_connections_.load(std::memory_order_relaxed) - 1,
                          std::memory_order_relaxed);
  for (auto& acceptor : acceptors_)
    acceptor->resume();
}

}  // namespace salam::detail
