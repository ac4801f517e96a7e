// ServiceManager: what salam tells systemd (sd_notify), for a unit of
// Type=notify. Nothing is sent unless systemd set NOTIFY_SOCKET.
//
//   ready()     READY=1, once every listener listens and every shard runs
//   reloading() RELOADING=1 with MONOTONIC_USEC, as a SIGHUP's reload begins;
//               then ready() again, with a STATUS= saying how it went
//   stopping()  STOPPING=1, with EXTEND_TIMEOUT_USEC covering the stop (the
//               accept grace and the drain)
//   main_pid()  MAINPID=, when an upgrade's new process takes over
//   store_sockets(), forget_sockets()  FDSTORE=1, FDSTOREREMOVE=1
#pragma once

#include <string_view>
#include <vector>

#include <salam/time.hpp>

namespace salam::daemon {

class ServiceManager {
 public:
  void ready(std::string_view status) noexcept;
  void reloading() noexcept;
  void stopping(Duration stop) noexcept;
  // MAINPID=: after an upgrade, the new process is the service.
  void main_pid(int pid) noexcept;
  // FDSTORE=1: systemd keeps a listener's sockets (with the unit's
  // FileDescriptorStoreMax=) and passes them back when the service starts
  // again, so that a restart closes no listening socket; FDSTOREREMOVE=1
  // lets go of them when a reload removes the listener.
  void store_sockets(std::string_view address, const std::vector<int>& fds) noexcept;
  void forget_sockets(std::string_view address) noexcept;
};

}  // namespace salam::daemon
