#include "proc.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <unistd.h>

namespace salam::bench {

namespace {

std::optional<std::string> read_small_file(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "re");
  if (file == nullptr) return std::nullopt;
  std::string text(4096, '\0');
  const std::size_t length = std::fread(text.data(), 1, text.size() - 1, file);
  std::fclose(file);
  text.resize(length);
  return text;
}

// utime + stime of a /proc stat file, in seconds.
std::optional<double> cpu_seconds_of(const std::string& stat) {
  // The command name (field 2) may hold spaces and parentheses: the fields
  // after it start after the last ')'.
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  // After ')': state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt
  // majflt cmajflt utime(14) stime(15).
  if (std::sscanf(stat.c_str() + close + 1,
                  " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2) {
    return std::nullopt;
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::vector<ThreadCpu> sample_threads(int pid) {
  std::vector<ThreadCpu> threads;
  std::error_code error;
  for (const auto& entry :
       std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid), error)) {
    const std::string tid = entry.path().filename().string();
    auto stat = read_small_file(entry.path().string() + "/stat");
    auto comm = read_small_file(entry.path().string() + "/comm");
    if (!stat || !comm) continue;  // the thread ended meanwhile
    auto seconds = cpu_seconds_of(*stat);
    if (!seconds) continue;
    if (!comm->empty() && comm->back() == '\n') comm->pop_back();
    threads.push_back(ThreadCpu{std::atoi(tid.c_str()), std::move(*comm), *seconds});
  }
  std::sort(threads.begin(), threads.end(),
            [](const ThreadCpu& a, const ThreadCpu& b) { return a.tid < b.tid; });
  return threads;
}

}  // namespace

std::vector<ThreadCpu> thread_cpu_between(const ServerSample& before, const ServerSample& after) {
  std::vector<ThreadCpu> moved;
  for (const ThreadCpu& thread : after.threads) {
    double start = 0;  // a thread born during the run started at 0
    for (const ThreadCpu& earlier : before.threads) {
      if (earlier.tid == thread.tid) start = earlier.cpu_seconds;
    }
    if (thread.cpu_seconds > start) {
      moved.push_back(ThreadCpu{thread.tid, thread.name, thread.cpu_seconds - start});
    }
  }
  return moved;
}

std::optional<ServerSample> sample_server(int pid) {
  auto stat = read_small_file(fmt::format("/proc/{}/stat", pid));
  auto status = read_small_file(fmt::format("/proc/{}/status", pid));
  if (!stat || !status) return std::nullopt;
  auto seconds = cpu_seconds_of(*stat);
  if (!seconds) return std::nullopt;
  ServerSample sample;
  sample.cpu_seconds = *seconds;
  sample.threads = sample_threads(pid);
  if (const auto rss = status->find("VmRSS:"); rss != std::string::npos) {
    sample.rss_kib = std::strtoull(status->c_str() + rss + 6, nullptr, 10);
  }
  return sample;
}

}  // namespace salam::bench
