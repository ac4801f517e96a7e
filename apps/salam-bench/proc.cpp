#include "proc.hpp"

#include <cstdio>
#include <cstring>
#include <string>

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

}  // namespace

std::optional<ServerSample> sample_server(int pid) {
  auto stat = read_small_file(fmt::format("/proc/{}/stat", pid));
  auto status = read_small_file(fmt::format("/proc/{}/status", pid));
  if (!stat || !status) return std::nullopt;
  // The command name (field 2) may hold spaces and parentheses: the fields
  // after it start after the last ')'.
  const auto close = stat->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  // After ')': state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt
  // majflt cmajflt utime(14) stime(15).
  if (std::sscanf(stat->c_str() + close + 1,
                  " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2) {
    return std::nullopt;
  }
  ServerSample sample;
  sample.cpu_seconds =
      static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  if (const auto rss = status->find("VmRSS:"); rss != std::string::npos) {
    sample.rss_kib = std::strtoull(status->c_str() + rss + 6, nullptr, 10);
  }
  return sample;
}

}  // namespace salam::bench
