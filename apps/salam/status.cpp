#include "status.hpp"

#include <unistd.h>

#include <salam/log.hpp>

namespace salam::daemon {

std::string_view to_string(Phase phase) noexcept {
  switch (phase) {
    case Phase::starting:
      return "starting";
    case Phase::running:
      return "running";
    case Phase::draining:
      return "draining";
  }
  return "running";
}

double unix_now() noexcept {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

DaemonStatus::DaemonStatus(const Server& server, std::string version, const Heartbeat* heartbeat)
    : server_(server),
      version_(std::move(version)),
      heartbeat_(heartbeat),
      start_time_(unix_now()) {
  reload_.last_success_time = start_time_;
}

void DaemonStatus::set_listeners(std::vector<ListenerInfo> listeners, std::uint64_t limit) {
  std::lock_guard lock(mutex_);
  listeners_ = std::move(listeners);
  limit_ = limit;
}

void DaemonStatus::reloaded(const std::string& error) {
  const double now = unix_now();
  std::lock_guard lock(mutex_);
  ++reload_.count;
  reload_.last_time = now;
  reload_.last_successful = error.empty();
  reload_.last_error = error;
  if (error.empty()) {
    reload_.last_success_time = now;
  } else {
    ++reload_.failures;
  }
}

StatusSnapshot DaemonStatus::snapshot() const {
  StatusSnapshot snapshot;
  snapshot.version = version_;
  snapshot.backend = std::string(to_string(server_.backend()));
  snapshot.pid = static_cast<int>(::getpid());
  snapshot.shards = server_.shard_count();
  snapshot.start_time = start_time_;
  snapshot.now = unix_now();
  snapshot.phase = phase();
  snapshot.accepted_per_shard = server_.accepted_per_shard();
  snapshot.accept_errors = server_.accept_errors();
  snapshot.log_lines_dropped = log::dropped_lines();
  {
    std::lock_guard lock(mutex_);
    snapshot.limit = limit_;
    snapshot.reload = reload_;
    snapshot.listeners.reserve(listeners_.size());
    for (const auto& info : listeners_)
      snapshot.listeners.push_back({info, {}, 0});
  }
  for (auto& listener : snapshot.listeners) {
    listener.totals = listener.info.metrics->totals();
    listener.peak = std::max(listener.info.metrics->peak(), listener.totals.active);
    snapshot.active += listener.totals.active;
  }
  snapshot.peak = std::max(peak_.load(std::memory_order_relaxed), snapshot.active);
  return snapshot;
}

std::optional<DaemonStatus::Silence> DaemonStatus::silent_shard() const noexcept {
  // Before the shards run there is nothing to hear; /ready says so.
  if (heartbeat_ == nullptr || phase() == Phase::starting) return std::nullopt;
  // Four beats missed, and at least two seconds: a busy shard's timer may
  // fire late, a wedged one never does.
  const Duration silence = std::max<Duration>(4 * heartbeat_->period(), std::chrono::seconds(2));
  const TimePoint now = Clock::now();
  const auto shard = heartbeat_->silent_shard(now, silence);
  if (!shard) return std::nullopt;
  return Silence{*shard, now - heartbeat_->last_beat(*shard)};
}

void DaemonStatus::sample() {
  std::vector<std::shared_ptr<ListenerMetrics>> metrics;
  {
    std::lock_guard lock(mutex_);
    for (const auto& info : listeners_)
      metrics.push_back(info.metrics);
  }
  std::uint64_t active = 0;
  for (const auto& listener : metrics) {
    const std::uint64_t open = listener->totals().active;
    listener->raise_peak(open);
    active += open;
  }
  if (active > peak_.load(std::memory_order_relaxed))
    peak_.store(active, std::memory_order_relaxed);
}

}  // namespace salam::daemon
