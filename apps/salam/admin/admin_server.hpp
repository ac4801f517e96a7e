// AdminServer: the admin endpoint (--admin ADDR). Plain HTTP/1.1 with
// keep-alive, GET and HEAD only:
//
//   /             the live status page (status.html, built in)
//   /status.json  the status as JSON
//   /metrics      Prometheus text format, or OpenMetrics if asked for
//   /ready        200 once every listener listens and every shard runs;
//                 503 while starting or draining
//   /live         200 while every shard's loop turns (see Heartbeat), 503
//                 naming a shard that has been silent for too long
//
// It runs on a Server of its own, one thread, so that nothing done here —
// a slow scraper, a flood of requests — runs on the service listeners'
// shards, and so that it answers while they drain. Its own limits: at
// most kMaxConnections at once (more are closed at once), a request head
// of at most http::kMaxRequestBytes that must arrive within
// kRequestTimeout, kIdleTimeout between requests, kMaxRequests per
// connection.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <salam/loop.hpp>
#include <salam/server.hpp>

#include "../status.hpp"

namespace salam::daemon {

class AdminServer {
 public:
  static constexpr int kMaxConnections = 64;
  static constexpr auto kRequestTimeout = std::chrono::seconds(10);
  static constexpr auto kIdleTimeout = std::chrono::seconds(60);
  static constexpr int kMaxRequests = 1000;

  // Opens the listening socket now, or takes `inherited` (passed by
  // systemd or by an upgrade): throws std::system_error naming the
  // address. `status` must outlive this object.
  AdminServer(const std::string& address, BackendKind backend, DaemonStatus& status,
              std::vector<int> inherited = {});
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  void start();
  // Closes the endpoint and its connections; waits for them.
  void stop() noexcept;
  // Where it listens (the real port when 0 was asked).
  std::string address() const { return server_->local_address(0); }
  // Its sockets, for an upgrade (see Server::listening_descriptors).
  std::vector<int> listening_descriptors() const { return server_->listening_descriptors(0); }
  // After an upgrade: the new process serves the endpoint; this one stops
  // answering, and leaves a Unix socket's file in place.
  void hand_over() noexcept;

  struct Context;

 private:
  std::unique_ptr<Context> context_;  // outlives the server, which serves with it
  std::unique_ptr<Server> server_;
  bool started_ = false;
};

}  // namespace salam::daemon
