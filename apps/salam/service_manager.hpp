// ServiceManager: what salam tells systemd (sd_notify), for a unit of
// Type=notify. Nothing is sent unless systemd set NOTIFY_SOCKET.
//
//   ready()     READY=1, once every listener listens and every shard runs
//   reloading() RELOADING=1 with MONOTONIC_USEC, as a SIGHUP's reload begins;
//               then ready() again, with a STATUS= saying how it went
//   stopping()  STOPPING=1, with EXTEND_TIMEOUT_USEC covering the drain
#pragma once

#include <string_view>

#include <salam/time.hpp>

namespace salam::daemon {

class ServiceManager {
 public:
  void ready(std::string_view status) noexcept;
  void reloading() noexcept;
  void stopping(Duration drain) noexcept;
};

}  // namespace salam::daemon
