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

void ServiceManager::stopping(Duration drain) noexcept {
  // systemd's stop timeout must not cut the drain short: ask for the drain
  // and a few seconds more.
  const auto extend =
      std::chrono::duration_cast<std::chrono::microseconds>(drain + std::chrono::seconds(5));
  try {
    notify(fmt::format("STOPPING=1\nEXTEND_TIMEOUT_USEC={}\nSTATUS=draining", extend.count()));
  } catch (const std::exception&) {
    notify("STOPPING=1");
  }
}

}  // namespace salam::daemon
