#include "shard.hpp"

#include <algorithm>
#include <cerrno>
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

// The shard running on this thread (ShardContext::current).
thread_local Shard* current_shard = nullptr;

}  // namespace

Shard::Shard(unsigned index, unsigned count, const ServerOptions& options,
             std::vector<ShardListener> listeners, std::vector<ShardTask> tasks)
    : index_(index),
      count_(count),
      options_(options),
      initial_listeners_(std::move(listeners)),
      tasks_(std::move(tasks)) {}

Shard::~Shard() = default;

void Shard::run(std::promise<void>& started) noexcept {
  current_shard = this;
  try {
    loop_.emplace(options_.loop);
    connections_.emplace();
    stop_requested_.emplace(*loop_);
    drain_progress_.emplace(*loop_);
    connections_->on_idle([this] { drain_progress_->set(); });
    reserve_ = open_reserve();
  } catch (...) {
    drain_progress_.reset();
    stop_requested_.reset();
    connections_.reset();
    loop_.reset();
    started.set_exception(std::current_exception());
    return;
  }

  try {
    loop_->run(main(started));
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
  retired_.clear();
  reserve_.reset();
}

Task<> Shard::main(std::promise<void>& started) {
  // The handler factories run here, in the running loop, so that they may
  // use Loop::current(). A factory that throws fails the server's start.
  try {
    for (ShardListener& listener : initial_listeners_)
      make_acceptors(listener);
    initial_listeners_.clear();
    std::lock_guard lock(loop_mutex_);
    loop_alive_ = true;
  } catch (...) {
    acceptors_.clear();
    started.set_exception(std::current_exception());
    Engine::cancel_all(*loop_);  // what earlier factories spawned must not keep the loop
    co_return;
  }
  started.set_value();  // `started` may be gone from here on

  start_tasks();
  for (auto& [id, acceptor] : acceptors_)
    acceptor->start();
  co_await stop_requested_->wait();

  stopping_ = true;
  for (auto& [id, acceptor] : acceptors_)
    acceptor->stop();
  // Each acceptor takes its queue again once its cancelled accept is
  // reaped, a turn or two from now: a shard with nothing to drain waits
  // for that too, or what reached the queue meanwhile would be reset.
  while (!acceptors_released() && Clock::now() < drain_deadline_) {
    drain_progress_->reset();
    co_await drain_progress_->wait(Deadline(drain_deadline_));
  }
  while (connections_->active() > 0 && !Engine::cancelling(*loop_)) {
    if (Clock::now() >= drain_deadline_) {
      const std::size_t left = connections_->active();
      cancelled_at_drain_.store(left, std::memory_order_relaxed);
      // Said only of a drain that had time: stop(0) asks to cut at once.
      if (drain_deadline_ > drain_started_) {
        log::warning("shard {}: {} connection(s) still open at the drain deadline; closing them",
                     index_, left);
      }
      Engine::cancel_all(*loop_);
      break;
    }
    drain_progress_->reset();
    co_await drain_progress_->wait(Deadline(drain_deadline_));
  }
  co_await connections_->join();
  // What else runs on the loop (tasks spawned with Loop::spawn, lingering
  // closes) is cut short now, so that the loop can end.
  Engine::cancel_all(*loop_);
}

void Shard::start_tasks() noexcept {
  for (const ShardTask& task : tasks_) {
    try {
      connections_->spawn(task(ShardContext(*this)));
    } catch (const std::exception& e) {
      log::error("shard {}: a shard task could not start: {}", index_, e.what());
    }
  }
  // The functions stay until the shard ends: a task may refer to them.
}

void Shard::post(std::function<void()> work) {
  std::lock_guard lock(loop_mutex_);
  if (loop_alive_) loop_->post(std::move(work));
}

void Shard::request_stop(TimePoint drain_deadline) {
  post([this, drain_deadline] { begin_stop(drain_deadline); });
}

void Shard::request_add(ShardListener listener) {
  // std::function needs a copyable callable: carry the listener by pointer.
  auto carried = std::make_shared<ShardListener>(std::move(listener));
  post([this, carried] { add(std::move(*carried)); });
}

void Shard::request_remove(std::size_t id) {
  post([this, id] { remove(id); });
}

void Shard::request_replace(std::size_t id, HandlerFactory factory) {
  post([this, id, factory = std::move(factory)] {
    auto [first, last] = acceptors_.equal_range(id);
    if (first == last) return;
    try {
      const Handler handler = factory();
      for (auto it = first; it != last; ++it)
        it->second->set_handler(handler);
    } catch (const std::exception& e) {
      log::error("listener {}: the new handler could not be made: {}", id, e.what());
    }
  });
}

void Shard::make_acceptors(ShardListener& listener) {
  const Handler handler = listener.factory();
  for (auto& socket : listener.sockets) {
    acceptors_.emplace(listener.id, std::make_unique<Acceptor>(*this, std::move(socket.socket),
                                                               socket.shared, handler));
  }
}

void Shard::add(ShardListener listener) noexcept {
  if (stopping_) return;
  try {
    make_acceptors(listener);
    auto [first, last] = acceptors_.equal_range(listener.id);
    for (auto it = first; it != last; ++it)
      it->second->start();
  } catch (const std::exception& e) {
    acceptors_.erase(listener.id);  // none started: a factory or an allocation threw
    log::error("listener {}: cannot start accepting on shard {}: {}", listener.id, index_,
               e.what());
  }
}

void Shard::remove(std::size_t id) noexcept {
  // Acceptors stopped earlier are freed once the loop has reaped their
  // operations, so the retired list holds at most the latest ones.
  std::erase_if(retired_, [](const auto& acceptor) { return acceptor->finished(); });
  // Out of the map before they stop: stopping serves what is queued, and a
  // connection that ends at once walks the map (connection_closed()).
  const std::size_t from = retired_.size();
  auto [first, last] = acceptors_.equal_range(id);
  for (auto it = first; it != last; ++it)
    retired_.push_back(std::move(it->second));
  acceptors_.erase(first, last);
  for (std::size_t i = from; i < retired_.size(); ++i)
    retired_[i]->stop();
}

void Shard::begin_stop(TimePoint drain_deadline) noexcept {
  if (!stop_requested_->is_set()) drain_started_ = Clock::now();
  drain_deadline_ = std::min(drain_deadline_, drain_deadline);
  stop_requested_->set();
  drain_progress_->set();  // re-check against the (maybe nearer) deadline
}

void Shard::serve(FileDescriptor socket, std::optional<SocketAddress> peer,
                  const Handler& handler) noexcept {
  // Only this thread writes the count; others read it.
  open_connections_.store(open_connections_.load(std::memory_order_relaxed) + 1,
                          std::memory_order_relaxed);
  accepted_.store(accepted_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  keep_reserve();  // before this connection's handler opens more
  try {
    connections_->spawn(handler(Engine::connection(*loop_, std::move(socket), peer, this)));
  } catch (const std::exception& e) {
    // The connection, if it was built, closed itself on the way out.
    log::error("connection handler could not start: {}", e.what());
  }
}

void Shard::count_accept_error(int error) noexcept {
  auto& counter = (error == EMFILE || error == ENFILE)    ? accept_errors_.descriptors
                  : (error == ENOBUFS || error == ENOMEM) ? accept_errors_.memory
                                                          : accept_errors_.other;
  counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

AcceptErrors Shard::accept_errors() const noexcept {
  return {accept_errors_.descriptors.load(std::memory_order_relaxed),
          accept_errors_.memory.load(std::memory_order_relaxed),
          accept_errors_.other.load(std::memory_order_relaxed)};
}

void Shard::shed_one(int listener) noexcept {
  reserve_.reset();
  int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd >= 0) ::close(fd);
  reserve_ = open_reserve();  // fails if another thread took the number first
}

bool Shard::acceptors_released() const noexcept {
  return std::all_of(acceptors_.begin(), acceptors_.end(),
                     [](const auto& entry) { return entry.second->released(); });
}

void Shard::acceptor_released() noexcept {
  if (drain_progress_) drain_progress_->set();
}

bool Shard::would_serve() const noexcept {
  return !Engine::cancelling(*loop_) && !(stopping_ && Clock::now() >= drain_deadline_);
}

void Shard::keep_reserve() noexcept {
  if (!reserve_) reserve_ = open_reserve();
}

void Shard::connection_closed() noexcept {
  open_connections_.store(open_connections_.load(std::memory_order_relaxed) - 1,
                          std::memory_order_relaxed);
  keep_reserve();  // a descriptor was just freed
  for (auto& [id, acceptor] : acceptors_)
    acceptor->resume();
}

}  // namespace salam::detail

namespace salam {

unsigned ShardContext::index() const noexcept {
  return shard_->index();
}
unsigned ShardContext::count() const noexcept {
  return shard_->count();
}
Loop& ShardContext::loop() const noexcept {
  return shard_->loop();
}
bool ShardContext::stopping() const noexcept {
  return shard_->stop_requested().is_set();
}
Event::Awaiter ShardContext::wait_for_stop(Deadline deadline) const noexcept {
  return shard_->stop_requested().wait(deadline);
}
std::optional<ShardContext> ShardContext::current() noexcept {
  if (detail::current_shard == nullptr) return std::nullopt;
  return ShardContext(*detail::current_shard);
}

}  // namespace salam
