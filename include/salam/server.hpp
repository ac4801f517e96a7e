// Server: listeners and shards, running connection handlers.
//
// A Server runs one shard per thread (by default one per CPU). Each shard
// has its own Loop and accepts connections from every listener; a
// connection is served, start to end, on the shard that accepted it, by a
// handler coroutine that owns it:
//
//   salam::Task<> greet(salam::Connection client) { ... }
//   salam::Server server;
//   server.listen({.address = "127.0.0.1:8888"}, greet);
//   return salam::run_until_signal(server);
//
// Shutdown is structured: stop() closes the listeners at once, lets
// connections finish until the drain deadline, then cancels what is left
// (their operations return cancelled()) and waits for every handler to
// return. Nothing outlives the Server.
//
// Listeners can be added, closed and given new handlers while the server
// runs (this is how a daemon reloads its configuration); connections
// already running are not touched.
//
// Threading: listen(), close_listener(), replace_handler(), start(), wait()
// and the destructor from one thread; stop() from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <salam/address.hpp>
#include <salam/connection.hpp>
#include <salam/loop.hpp>
#include <salam/shard_context.hpp>
#include <salam/task.hpp>
#include <salam/time.hpp>

namespace salam {

using Handler = std::function<Task<>(Connection)>;
// Makes one shard's handler for a listener; called once per shard, on that
// shard's thread, in its running loop (Loop::current() is that shard's).
// Use it to give each shard its own copy of state that connections share,
// so that no two shards write the same memory.
using HandlerFactory = std::function<Handler()>;
// A task to run on every shard (see Server::on_each_shard).
using ShardTask = std::function<Task<>(ShardContext)>;

struct ListenOptions {
  // `127.0.0.1:8888`, `[::1]:8888`, `[::]:8888` (IPv6 and IPv4) or `unix:/path`.
  std::string address;
  // Accept queue length; clamped to net.core.somaxconn (logged when it is).
  int backlog = 4096;
  // For `[::]`: accept IPv6 only (default: IPv4 too).
  bool v6_only = false;
  // One listening socket per shard in an SO_REUSEPORT group (the default),
  // or (false) one that every shard accepts from. Both spread connections
  // over all shards on both backends; the group cost 8% less server CPU per
  // greeting with two shards. A shared socket keeps one accept queue (a
  // busy shard takes fewer) and loses no queued connection when a shard's
  // socket closes. Unix listeners are always shared. See docs/engine.md,
  // "Accepting", for the measurements.
  bool reuse_port = true;
  // TCP_DEFER_ACCEPT: accept a connection only once the client has sent
  // data (or this many seconds passed). Only for client-speaks-first
  // protocols.
  int defer_accept_seconds = 0;
  // TCP_NODELAY on accepted connections (inherited from the listener).
  bool no_delay = false;
  // SO_SNDBUF of accepted TCP connections, in bytes (inherited from the
  // listener; the kernel doubles it for its bookkeeping). 0 leaves it to
  // the kernel's autotuning, which lets one client that stops reading pin
  // up to net.ipv4.tcp_wmem's maximum (4 MiB by default) of kernel memory.
  int send_buffer = 0;
  // Listening sockets the program was given — by systemd's socket
  // activation, or by the process it replaces (an upgrade hands over
  // every socket of an SO_REUSEPORT group, so that no queued connection
  // is lost): used as they are, never bound; the server owns them from
  // here on. One is shared by every shard; a group goes one socket per
  // shard where the counts match, and is spread over the shards where they
  // do not (see docs/engine.md, "Inherited sockets"). Each must be a
  // listening stream socket (std::system_error otherwise), and `address`
  // must be where they listen. The socket options above are the giver's
  // business, and a Unix socket's file is left in place when the listener
  // closes.
  std::vector<int> inherited_fds{};
  // An inherited Unix socket's file is removed when the listener closes,
  // as if it had been bound here: it came from the process this one
  // replaces, not from systemd (whose file it is).
  bool owns_inherited_file = false;
};

struct ServerOptions {
  // Shards (threads); 0 means one per CPU the process may run on.
  unsigned threads = 0;
  LoopOptions loop;
  // After running out of descriptors, accepting pauses this long at first,
  // doubling up to accept_backoff_max, and resumes early when a connection
  // of the shard closes.
  Duration accept_backoff = std::chrono::milliseconds(50);
  Duration accept_backoff_max = std::chrono::seconds(1);
  // start() logs a "listening on ADDRESS" line per listener (false: the
  // program says where it listens itself).
  bool log_listening = true;
};

// Accepts that failed, by kind (see Server::accept_errors).
struct AcceptErrors {
  std::uint64_t descriptors = 0;  // EMFILE, ENFILE: out of descriptors; accepting paused
  std::uint64_t memory = 0;       // ENOBUFS, ENOMEM: out of kernel memory; accepting paused
  std::uint64_t other = 0;        // anything else (a connection gone before it was accepted, ...)
};

class Server {
 public:
  explicit Server(ServerOptions options = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Opens a listening socket now, so that a bad or busy address fails
  // before anything runs: throws std::system_error naming the address.
  // Returns the listener's index. After start(), the shards begin
  // accepting on it at once.
  std::size_t listen(const ListenOptions& options, Handler handler);
  std::size_t listen(const ListenOptions& options, HandlerFactory factory);
  // Stops accepting on a listener and closes its socket; its connections
  // go on, and so do those already waiting in its queue, which are taken
  // and served first (as far as descriptors allow: docs/engine.md,
  // "Shutdown"). A later listen() may return the same index again.
  void close_listener(std::size_t index);
  // New connections of the listener go to the new handler.
  void replace_handler(std::size_t index, HandlerFactory factory);
  // The descriptors of listener `index`'s sockets (one, or its SO_REUSEPORT
  // group), for handing them to another process: the server still owns
  // them, and they stay valid while the listener is open and the server
  // runs. Empty once it is closed.
  std::vector<int> listening_descriptors(std::size_t index) const;
  // From now on no listener removes its Unix socket's file when it closes:
  // another process serves the sockets now (after an upgrade).
  void keep_socket_files() noexcept;
  // Where listener `index` listens (with the real port when 0 was asked),
  // as text: `127.0.0.1:40123` or `unix:/path`.
  std::string local_address(std::size_t index) const;
  // The same, for IP listeners.
  SocketAddress local_socket_address(std::size_t index) const;

  // Runs `task` on every shard from start() until it returns: started on
  // the shard's thread before it accepts, told of a stop through
  // ShardContext::wait_for_stop, waited for by the drain like a connection,
  // and cancelled at the drain deadline. Call before start().
  void on_each_shard(ShardTask task);

  // Starts the shards. Throws if one cannot start (its loop could not be
  // set up, or a handler factory threw); then no shard runs.
  void start();
  // Stops accepting, as close_listener() does for each listener (what is
  // queued is served, unless `drain_timeout` is 0), and drains: connections
  // have until `drain_timeout` to end, then they are cancelled.
  // Thread-safe and idempotent; returns at once. A second call may shorten
  // the drain (stop(0) ends it now).
  void stop(Duration drain_timeout) noexcept;
  // Returns when every shard has finished.
  void wait();
  bool running() const noexcept;

  unsigned shard_count() const noexcept;
  BackendKind backend() const noexcept;
  // Connections open now, over all shards.
  std::size_t connection_count() const noexcept;
  // Connections that the last stop() had to cancel at its deadline.
  std::size_t cancelled_at_drain() const noexcept;
  // Connections each shard has accepted since start(), by shard index: how
  // evenly the kernel spreads the load.
  std::vector<std::uint64_t> accepted_per_shard() const;
  // Accepts that failed since start(), over all shards. Thread-safe.
  AcceptErrors accept_errors() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Starts `server`, waits for SIGINT or SIGTERM, then drains for
// `drain_timeout`; a second signal ends the drain at once. Returns 0, the
// exit status of a stop that was asked for (connections cut at the
// deadline are counted in a warning). SIGHUP calls `on_hangup` (on this
// thread) if given, and is ignored otherwise. The signals are blocked from
// here on; block them first thing in main() if the program does work
// before calling this (a SIGHUP's default action ends the process).
int run_until_signal(Server& server, Duration drain_timeout = std::chrono::seconds(10),
                     const std::function<void()>& on_hangup = {});

// How a stop goes. `grace`: for this long first the listeners stay open
// and connections are still accepted and served, so that a balancer whose
// health check has been told the server is going (the `stopping` hook)
// takes it out before anything is refused. Then the listeners close and
// connections have `drain` to finish. A second SIGINT or SIGTERM ends the
// grace and the drain at once. Duration::max() is for ever.
struct StopPlan {
  Duration grace{};
  Duration drain{std::chrono::seconds(10)};
};

// The same, telling the program each step (each hook is optional and runs
// on the calling thread): `started` once every shard runs, `hangup` at
// each SIGHUP, `stopping` when the stop begins (before the grace). For a
// service manager's notifications (sd_notify's READY, RELOADING and
// STOPPING). Once the stop has begun, SIGHUP and SIGUSR2 are ignored (with
// a log line). Hooks must not throw.
// `upgrade`, if given, runs at each SIGUSR2 (which is then waited for like
// the others): it returns true once another process serves in this one's
// place, and the drain begins as for SIGTERM, without a grace (the other
// process accepts already); false keeps serving.
// `plan`, if given, is asked when the stop begins, right after `stopping`,
// so that what a reload set applies; its `drain` then replaces
// `drain_timeout`. Without it the stop has no grace and `drain_timeout`.
struct SignalHooks {
  std::function<void()> started{};
  std::function<void()> hangup{};
  std::function<void()> stopping{};
  std::function<bool()> upgrade{};
  std::function<StopPlan()> plan{};
};
int run_until_signal(Server& server, Duration drain_timeout, const SignalHooks& hooks);

}  // namespace salam
