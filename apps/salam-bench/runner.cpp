#include "runner.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <signal.h>

#include <salam/loop.hpp>
#include <salam/task.hpp>
#include <salam/tls.hpp>

#include "proc.hpp"
#include "workload.hpp"

namespace salam::bench {

namespace {

using namespace std::chrono_literals;

std::atomic<bool> interrupted = false;

// The first Ctrl-C ends the run early, with a report; the handler resets
// itself, so a second one ends the process at once.
void on_interrupt(int) {
  interrupted.store(true, std::memory_order_relaxed);
}

void catch_interrupt() {
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  action.sa_flags = SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
}

// What a client thread hands back when it ends.
struct ThreadResult {
  Stats stats;
  // When its last measured operation ended: warm-up operations that end
  // later do not stretch the measurement.
  TimePoint finished;
  std::string error;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in && !in.eof()) throw std::runtime_error("cannot read " + path);
  return text;
}

// The client's TLS settings: no verification unless --tls-ca names the CAs
// (a benchmark need not pay for it), one version or both.
tls::ClientSettings client_settings(const Options& options) {
  tls::ClientSettings settings;
  if (!options.tls_ca_file.empty()) {
    settings.ca = tls::Pem{read_file(options.tls_ca_file), options.tls_ca_file};
  }
  if (options.tls_version) settings.min_version = settings.max_version = *options.tls_version;
  return settings;
}

Task<> spawn_workers(ThreadContext* context, unsigned first, unsigned stride, unsigned count) {
  for (unsigned i = 0; i < count; ++i)
    context->loop().spawn(run_worker(context, first + i * stride));
  co_return;
}

void client_thread(const Options& options, const Schedule& schedule, BackendKind backend,
                   const tls::ClientSettings* tls_settings, unsigned thread, Progress& progress,
                   ThreadResult& result, std::atomic<unsigned>& threads_done) {
  try {
    const unsigned threads = options.threads;
    const unsigned workers =
        options.concurrency / threads + (thread < options.concurrency % threads);
    std::uint64_t requests = 0;
    if (options.requests > 0) {
      requests = options.requests / threads + (thread < options.requests % threads);
    }
    LoopOptions loop_options;
    loop_options.backend = backend;
    Loop loop(loop_options);
    // A TLS context per thread: nothing shared between threads while the
    // run goes, not even a reference count.
    std::shared_ptr<const tls::ClientContext> tls_context;
    if (tls_settings != nullptr) tls_context = tls::ClientContext::create(*tls_settings);
    // The context holds two 30 KiB histograms: keep it off the stack.
    auto context = std::make_unique<ThreadContext>(loop, options, schedule, progress, requests,
                                                   std::move(tls_context));
    loop.run(spawn_workers(context.get(), thread, threads, workers));
    result.stats = context->stats();
    result.finished = context->last_completion();
  } catch (const std::exception& error) {
    result.error = error.what();
  }
  threads_done.fetch_add(1, std::memory_order_release);
}

std::uint64_t sum(const std::unique_ptr<Progress[]>& progress, unsigned threads,
                  std::atomic<std::uint64_t> Progress::*field) {
  std::uint64_t total = 0;
  for (unsigned i = 0; i < threads; ++i)
    total += (progress[i].*field).load(std::memory_order_relaxed);
  return total;
}

void show_progress(const Options& options, TimePoint started, std::uint64_t operations,
                   std::uint64_t errors, std::uint64_t held) {
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  std::string line =
      options.workload == Workload::hold
          ? fmt::format("\r{:6.1f}s  held {}  errors {}", seconds, held, errors)
          : fmt::format("\r{:6.1f}s  operations {}  errors {}", seconds, operations, errors);
  line += "\033[K";
  std::fputs(line.c_str(), stderr);
}

}  // namespace

RunResult run(const Options& options) {
  RunResult result;
  result.backend = resolve_backend(options.backend);
  const bool single_shot =
      options.workload == Workload::hold || options.workload == Workload::burst;
  const int pid = options.server_pid;
  std::optional<tls::ClientSettings> tls_settings;
  if (options.tls) {
    tls_settings = client_settings(options);
    (void)tls::ClientContext::create(*tls_settings);  // a bad CA file fails here, once
  }

  std::optional<ServerSample> before;
  std::optional<ServerSample> upstream_before;
  if (pid != 0) before = sample_server(pid);
  if (before) result.server_rss_before_kib = before->rss_kib;
  if (options.upstream_pid != 0) upstream_before = sample_server(options.upstream_pid);

  const TimePoint started = Clock::now();
  Schedule schedule;
  // Burst clients start together once every thread has spawned its
  // workers; 100 ms is ample for that.
  schedule.burst_at = started + 100ms;
  if (options.workload == Workload::burst) {
    schedule.measure_start = schedule.burst_at;
    schedule.end = TimePoint::max();
  } else if (options.workload == Workload::hold) {
    schedule.measure_start = started;
    schedule.end = started + options.duration;
  } else {
    schedule.measure_start = started + options.warmup;
    schedule.end =
        options.requests > 0 ? TimePoint::max() : schedule.measure_start + options.duration;
  }
  schedule.interrupted = &interrupted;
  catch_interrupt();
  const bool sample_at_measure_start = !single_shot && options.warmup > Duration::zero();

  const unsigned threads = options.threads;
  auto progress = std::make_unique<Progress[]>(threads);
  std::vector<ThreadResult> results(threads);
  std::atomic<unsigned> threads_done = 0;
  std::vector<std::thread> clients;
  clients.reserve(threads);
  for (unsigned i = 0; i < threads; ++i) {
    clients.emplace_back(client_thread, std::cref(options), std::cref(schedule), result.backend,
                         tls_settings ? &*tls_settings : nullptr, i, std::ref(progress[i]),
                         std::ref(results[i]), std::ref(threads_done));
  }

  // The main thread only watches: progress, and the server samples that
  // must be taken at a moment of the run.
  bool sampled_start = !sample_at_measure_start;
  std::optional<TimePoint> all_held_at;
  const TimePoint hold_sample_deadline = started + options.duration * 9 / 10;
  while (threads_done.load(std::memory_order_acquire) < threads) {
    std::this_thread::sleep_for(options.progress ? 100ms : 20ms);
    const TimePoint now = Clock::now();
    const std::uint64_t held = sum(progress, threads, &Progress::held);
    result.most_held = std::max(result.most_held, held);
    if (!sampled_start && now >= schedule.measure_start) {
      if (pid != 0) before = sample_server(pid);
      if (options.upstream_pid != 0) upstream_before = sample_server(options.upstream_pid);
      sampled_start = true;
    }
    if (options.workload == Workload::hold && pid != 0 && !result.server_rss_held_kib) {
      // Let the server finish its accepts before reading its memory.
      if (held == options.concurrency && !all_held_at) all_held_at = now;
      if ((all_held_at && now >= *all_held_at + 200ms) || now >= hold_sample_deadline) {
        if (auto sample = sample_server(pid)) result.server_rss_held_kib = sample->rss_kib;
      }
    }
    if (options.progress) {
      show_progress(options, started, sum(progress, threads, &Progress::operations),
                    sum(progress, threads, &Progress::errors), held);
    }
  }
  for (auto& client : clients)
    client.join();
  if (options.progress) std::fputs("\r\033[K", stderr);

  if (pid != 0) {
    const auto after = sample_server(pid);
    if (before && after) {
      result.server_cpu_seconds = after->cpu_seconds - before->cpu_seconds;
      result.server_threads = thread_cpu_between(*before, *after);
    }
  }
  if (options.upstream_pid != 0) {
    const auto after = sample_server(options.upstream_pid);
    if (upstream_before && after) {
      result.upstream_cpu_seconds = after->cpu_seconds - upstream_before->cpu_seconds;
    }
  }

  // With --duration the measurement lasts at least that long, even if the
  // operations still running at its end had started in the warm-up.
  const bool ran_to_the_end = schedule.end != TimePoint::max() && !interrupted.load();
  TimePoint finished = ran_to_the_end ? schedule.end : schedule.measure_start;
  for (auto& thread : results) {
    if (!thread.error.empty()) throw std::runtime_error("client thread: " + thread.error);
    result.stats.merge(thread.stats);
    finished = std::max(finished, thread.finished);
  }
  result.elapsed =
      options.workload == Workload::hold ? options.duration : finished - schedule.measure_start;
  return result;
}

}  // namespace salam::bench
