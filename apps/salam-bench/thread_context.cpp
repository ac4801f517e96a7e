#include <algorithm>

#include <fmt/format.h>

#include "workload.hpp"

namespace salam::bench {

ThreadContext::ThreadContext(Loop& loop, const Options& options, const Schedule& schedule,
                             Progress& progress, std::uint64_t requests,
                             std::shared_ptr<const tls::ClientContext> tls)
    : loop_(&loop),
      options_(&options),
      schedule_(schedule),
      progress_(&progress),
      remaining_(requests),
      counted_(options.requests > 0),
      tls_(std::move(tls)) {
  if (options.workload == Workload::echo || options.workload == Workload::discard) {
    // A pattern that does not repeat at the period of common buffer sizes,
    // so an echo that loses or reorders bytes does not compare equal.
    payload_.resize(options.payload_size());
    for (std::size_t i = 0; i < payload_.size(); ++i)
      payload_[i] = static_cast<std::byte>((i * 131 + i / 251) % 251);
  }
  for (unsigned i = 1; i <= options.source_addresses; ++i) {
    sources_.push_back(SocketAddress::parse(fmt::format("127.0.0.{}:0", i)));
  }
}

std::optional<SocketAddress> ThreadContext::source_for(unsigned worker) const noexcept {
  if (sources_.empty()) return std::nullopt;
  return sources_[worker % sources_.size()];
}

ThreadContext::Phase ThreadContext::next(TimePoint now) noexcept {
  if (now >= schedule_.end) return Phase::stop;
  if (schedule_.interrupted != nullptr && schedule_.interrupted->load(std::memory_order_relaxed)) {
    return Phase::stop;
  }
  if (now < schedule_.measure_start) return Phase::warmup;
  if (counted_) {
    if (remaining_ == 0) return Phase::stop;
    --remaining_;
  }
  return Phase::measure;
}

void ThreadContext::succeeded(Phase phase, TimePoint started, TimePoint ended) noexcept {
  if (phase != Phase::measure) return;
  stats_.record_success(ended - started);
  publish(ended);
}

void ThreadContext::failed(Phase phase, std::error_code error,
                           std::string_view tls_detail) noexcept {
  if (phase != Phase::measure) return;
  stats_.record_error(error, tls_detail);
  publish();
}

void ThreadContext::failed(Phase phase, ErrorKind kind) noexcept {
  if (phase != Phase::measure) return;
  stats_.record_error(kind);
  publish();
}

void ThreadContext::reset_after_reply(Phase phase) noexcept {
  if (phase != Phase::measure) return;
  ++stats_.resets_after_reply;
  stats_.record_error(ErrorKind::reset);
  publish();
}

void ThreadContext::count_bytes(Phase phase, std::uint64_t sent, std::uint64_t received) noexcept {
  if (phase != Phase::measure) return;
  stats_.bytes_sent += sent;
  stats_.bytes_received += received;
}

void ThreadContext::handshake_done(Phase phase, const tls::SessionInfo& info,
                                   bool offered) noexcept {
  // What was negotiated is worth knowing even if the only handshake was
  // in the warm-up (a persistent connection's).
  stats_.note_negotiated(info.version, info.cipher);
  if (phase != Phase::measure) return;
  stats_.record_handshake(info.resumed, offered, info.duration);
}

void ThreadContext::hold_started() noexcept {
  progress_->held.store(++held_, std::memory_order_relaxed);
}

void ThreadContext::hold_ended() noexcept {
  progress_->held.store(--held_, std::memory_order_relaxed);
}

void ThreadContext::publish(TimePoint now) noexcept {
  last_completion_ = std::max(last_completion_, now);
  progress_->operations.store(stats_.operations(), std::memory_order_relaxed);
  progress_->errors.store(stats_.error_count(), std::memory_order_relaxed);
}

}  // namespace salam::bench
