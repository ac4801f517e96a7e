#include "service_manager.hpp"

#include <ctime>

#include <fmt/format.h>
#include <systemd/sd-daemon.h>

#include <salam/printable.hpp>

namespace salam::daemon {

namespace {

void notify(const std::string& message) noexcept {
  // A service manager that cannot be told is not the daemon's failure.
  (void)sd_notify(0, message.c_str());
}

// FDNAME= may hold no ':' (and no control character): an address with
// its colons as underscores (127.0.0.1_8888, unix_/run/salam.sock).
std::string fd_name(std::string_view address) {
  std::string name = printable(address, 255);
  for (char& c : name) {
    if (c == ':') c = '_';
  }
  return name;
}

// STATUS= is one line: no newline may end the message early.
std::string status_line(std::string_view status) {
  return printable(status, 200);
}

}  // namespace

void ServiceManager::ready(std::string_view status) noexcept {
  try {
    notify(fmt::format("READY=1\nSTATUS={}", status_line(status)));
  } catch (const std::exception&) {
    notify("READY=1");
  }
}

void ServiceManager::reloading() noexcept {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const auto microseconds = static_cast<unsigned long long>(now.tv_sec) * 1'000'000ULL +
                            static_cast<unsigned long long>(now.tv_nsec) / 1000ULL;
  try {
    notify(fmt::format("RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading", microseconds));
  } catch (const std::exception&) {
    notify("RELOADING=1");
  }
}

void ServiceManager::stopping(Duration stop) noexcept {
  // systemd's stop timeout must not cut the stop short: ask for it and a
  // few seconds more.
  const auto extend =
      std::chrono::duration_cast<std::chrono::microseconds>(stop + std::chrono::seconds(5));
  try {
    notify(fmt::format("STOPPING=1\nEXTEND_TIMEOUT_USEC={}\nSTATUS=draining", extend.count()));
  } catch (const std::exception&) {
    notify("STOPPING=1");
  }
}

void ServiceManager::main_pid(int pid) noexcept {
  try {
    notify(fmt::format("MAINPID={}\nSTATUS=upgraded: process {} serves", pid, pid));
  } catch (const std::exception&) {
  }
}

void ServiceManager::store_sockets(std::string_view address, const std::vector<int>& fds) noexcept {
  if (fds.empty()) return;
  try {
    const std::string message = "FDSTORE=1\nFDNAME=" + fd_name(address);
    (void)sd_pid_notify_with_fds(0, 0, message.c_str(), fds.data(),
                                 static_cast<unsigned>(fds.size()));
  } catch (const std::exception&) {
  }
}

void ServiceManager::forget_sockets(std::string_view address) noexcept {
  try {
    notify("FDSTOREREMOVE=1\nFDNAME=" + fd_name(address));
  } catch (const std::exception&) {
  }
}

}  // namespace salam::daemon
