#include "admin_server.hpp"

#include <fmt/format.h>

#include <salam/log.hpp>
#include <salam/shard_context.hpp>

#include "../upgrade.hpp"
#include "exposition.hpp"
#include "http.hpp"
#include "status_json.hpp"

namespace salam::daemon {

std::string_view status_page() noexcept;  // generated from status.html

struct AdminServer::Context {
  DaemonStatus& status;
  int open = 0;  // connections; touched only on the admin thread
};

namespace {

constexpr std::string_view kPagePolicy =
    "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'\r\n";

std::string answer(const http::Request& request, const DaemonStatus& status) {
  const std::string_view path = request.path;
  if (path == "/" || path == "/index.html") {
    return http::response(200, "text/html; charset=utf-8", status_page(), request, kPagePolicy);
  }
  if (path == "/status.json") {
    return http::response(200, "application/json", render_status_json(status.snapshot()), request);
  }
  if (path == "/metrics") {
    const bool openmetrics = wants_openmetrics(request.accept);
    return http::response(200, openmetrics ? kOpenMetricsType : kPrometheusType,
                          render_metrics(status.snapshot(), openmetrics), request);
  }
  if (path == "/ready") {
    const Phase phase = status.phase();
    const std::string body = std::string(to_string(phase)) + "\n";
    return http::response(phase == Phase::running ? 200 : 503, "text/plain; charset=utf-8",
                          phase == Phase::running ? "ready\n" : body, request);
  }
  if (path == "/live") {
    if (const auto silence = status.silent_shard()) {
      return http::response(
          503, "text/plain; charset=utf-8",
          fmt::format(
              "shard {} has not turned for {} ms\n", silence->shard,
              std::chrono::duration_cast<std::chrono::milliseconds>(silence->silent).count()),
          request);
    }
    return http::response(200, "text/plain; charset=utf-8", "live\n", request);
  }
  return http::response(404, "text/plain; charset=utf-8",
                        "404 Not Found: try /, /status.json, /metrics, /ready or /live\n", request);
}

// Reads until `input` holds a whole request, or one to refuse. False if
// the client closed, reset or timed out first (a request cut short by the
// timeout is answered with a 408).
Task<bool> read_request(Connection& client, std::string& input, http::Parsed& parsed,
                        Duration idle) {
  Deadline deadline(input.empty() ? idle : AdminServer::kRequestTimeout);
  parsed = http::parse_request(input);
  while (parsed.status == http::Parsed::Status::incomplete) {
    auto bytes = co_await client.read(http::kMaxRequestBytes - input.size(), deadline);
    if (!bytes || bytes->empty()) {
      if (!input.empty() && !bytes && bytes.error() == timed_out()) {
        co_await client.write_all(http::error_response(408, "the request took too long"),
                                  std::chrono::seconds(1));
      }
      co_return false;
    }
    // Once a request has begun, the rest of it must follow within the
    // request timeout.
    if (input.empty()) deadline = Deadline(AdminServer::kRequestTimeout);
    const auto view = bytes->bytes();
    input.append(reinterpret_cast<const char*>(view.data()), view.size());
    parsed = http::parse_request(input);
  }
  co_return true;
}

Task<> serve_admin(Connection client, AdminServer::Context& context) {
  if (context.open >= AdminServer::kMaxConnections) {
    log::debug("admin: {} connections open; closing one more", context.open);
    client.close(Connection::Linger::never);
    co_return;
  }
  ++context.open;
  std::string input;
  http::Parsed parsed;
  for (int served = 0; served < AdminServer::kMaxRequests; ++served) {
    const Duration idle =
        served == 0 ? Duration(AdminServer::kRequestTimeout) : Duration(AdminServer::kIdleTimeout);
    if (!co_await read_request(client, input, parsed, idle)) break;
    if (parsed.status == http::Parsed::Status::refused) {
      co_await client.write_all(http::error_response(parsed.code, parsed.reason),
                                std::chrono::seconds(5));
      break;
    }
    std::string reply;
    try {
      reply = answer(parsed.request, context.status);
    } catch (const std::bad_alloc&) {
      reply = http::error_response(500, "out of memory");
      parsed.request.keep_alive = false;
    }
    const bool keep_alive = parsed.request.keep_alive;
    input.erase(0, parsed.length);
    if (co_await client.write_all(reply, std::chrono::seconds(10))) break;
    if (!keep_alive) break;
  }
  --context.open;
  client.close();
}

// Keeps the peaks of open connections (DaemonStatus::sample).
Task<> sample(ShardContext shard, DaemonStatus& status) {
  for (;;) {
    // Named first: GCC 12 miscompiles a co_await in a loop condition (see
    // coroutine_patterns_test.cpp).
    const bool stopping = co_await shard.wait_for_stop(std::chrono::milliseconds(100));
    if (stopping) break;
    status.sample();
  }
}

}  // namespace

AdminServer::AdminServer(const std::string& address, BackendKind backend, DaemonStatus& status,
                         std::vector<int> inherited)
    : context_(std::make_unique<Context>(Context{status})) {
  ServerOptions options;
  options.threads = 1;
  options.loop.backend = backend;
  options.log_listening = false;  // the daemon names it: "admin endpoint on"
  server_ = std::make_unique<Server>(options);
  ListenOptions listen;
  listen.address = address;
  listen.backlog = 128;
  listen.inherited_fds = std::move(inherited);
  listen.owns_inherited_file = Upgrade::replacing();
  Context* context = context_.get();
  server_->listen(listen, Handler([context](Connection client) {
                    return serve_admin(std::move(client), *context);
                  }));
  server_->on_each_shard([context](ShardContext shard) { return sample(shard, context->status); });
}

AdminServer::~AdminServer() {
  stop();
}

void AdminServer::start() {
  server_->start();
  started_ = true;
}

void AdminServer::hand_over() noexcept {
  server_->keep_socket_files();
  stop();
}

void AdminServer::stop() noexcept {
  if (!started_) return;
  started_ = false;
  server_->stop(Duration::zero());
  server_->wait();
}

}  // namespace salam::daemon
