#include "options.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

namespace salam::bench {

namespace {

constexpr std::string_view kWorkloads[] = {"greet", "banner", "echo",     "discard",
                                           "hold",  "burst",  "handshake"};

// CLI11 wants a callable that returns an empty string for good input.
std::string check_duration(const std::string& text) {
  try {
    parse_duration(text);
    return {};
  } catch (const std::invalid_argument& error) {
    return error.what();
  }
}

void add_tls_options(CLI::App& app, Options& options, std::string& version) {
  auto* tls =
      app.add_flag("--tls", options.tls, "speak TLS to the target (every workload)")->group("TLS");
  app.add_option("--tls-server-name", options.tls_server_name, "the name to ask for (SNI)")
      ->group("TLS")
      ->needs(tls);
  app.add_option("--tls-ca", options.tls_ca_file,
                 "verify the server against these CAs (PEM; default: no verification)")
      ->group("TLS")
      ->needs(tls)
      ->check(CLI::ExistingFile);
  app.add_flag("--tls-resume", options.tls_resume,
               "each worker's next connection resumes the session its previous one got")
      ->group("TLS")
      ->needs(tls);
  app.add_option("--tls-version", version, "1.2 or 1.3 only (default: either, 1.3 preferred)")
      ->group("TLS")
      ->needs(tls)
      ->check(CLI::IsMember({"1.2", "1.3"}));
}

// What the TLS options cannot go with.
void check_tls_options(const Options& options, std::string_view workload) {
  if (workload == "handshake" && !options.tls) {
    throw CLI::ValidationError("--workload handshake", "needs --tls");
  }
  if (options.tls && options.half_close) {
    // Connection::shutdown_write() refuses a connection with a TLS layer:
    // close_notify goes out only with close(), which ends reading too.
    throw CLI::ValidationError("--half-close",
                               "cannot go with --tls: a TLS connection cannot end its side "
                               "(close_notify) and keep reading");
  }
}

}  // namespace

std::string_view to_string(Workload workload) noexcept {
  return kWorkloads[static_cast<std::size_t>(workload)];
}

Workload parse_workload(std::string_view text) {
  for (std::size_t i = 0; i < std::size(kWorkloads); ++i) {
    if (kWorkloads[i] == text) return static_cast<Workload>(i);
  }
  throw std::invalid_argument(fmt::format(
      "unknown workload '{}' (expected greet, banner, echo, discard, hold, burst or handshake)",
      text));
}

Duration parse_duration(std::string_view text) {
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  double value = 0;
  auto [unit, error] = std::from_chars(begin, end, value);
  if (error != std::errc{} || unit == begin) {
    throw std::invalid_argument(fmt::format("'{}' is not a duration (try 10s or 500ms)", text));
  }
  const std::string_view suffix(unit, static_cast<std::size_t>(end - unit));
  double seconds_per_unit;
  if (suffix.empty() || suffix == "s") {
    seconds_per_unit = 1;
  } else if (suffix == "ms") {
    seconds_per_unit = 1e-3;
  } else if (suffix == "us" || suffix == "µs") {
    seconds_per_unit = 1e-6;
  } else if (suffix == "m" || suffix == "min") {
    seconds_per_unit = 60;
  } else {
    throw std::invalid_argument(
        fmt::format("'{}': unknown unit '{}' (use us, ms, s or m)", text, suffix));
  }
  const double nanoseconds = value * seconds_per_unit * 1e9;
  if (!std::isfinite(nanoseconds) || nanoseconds < 0 || nanoseconds > 1e9 * 86400 * 365) {
    throw std::invalid_argument(fmt::format("'{}' is out of range", text));
  }
  return Duration(static_cast<Duration::rep>(std::llround(nanoseconds)));
}

std::string format_duration(Duration duration) {
  const double seconds = std::chrono::duration<double>(duration).count();
  if (seconds < 1) return fmt::format("{:.0f}ms", seconds * 1e3);
  return fmt::format("{:.2f}s", seconds);
}

std::size_t Options::payload_size() const noexcept {
  if (size != 0) return size;
  return workload == Workload::discard ? 64 * 1024 : 64;
}

Options parse_options(int argc, char** argv) {
  Options options;
  CLI::App app{
      "salam-bench: a load generator for TCP servers (greeting protocol, echo, discard, idle "
      "connections, connect bursts)"};
  std::string target = "127.0.0.1:8888";
  std::string workload = "greet";
  std::string duration;
  std::string warmup = "0s";
  std::string timeout = "10s";
  std::string backend = "auto";
  app.add_option("--target", target, "server address, ADDR:PORT")->capture_default_str();
  app.add_option("--workload", workload,
                 "greet, banner, echo, discard, hold, burst or handshake (needs --tls)")
      ->capture_default_str()
      ->check(CLI::IsMember({"greet", "banner", "echo", "discard", "hold", "burst", "handshake"}));
  app.add_option("-c,--concurrency", options.concurrency,
                 "connections in flight (hold: held; burst: connecting at once)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1'000'000u));
  auto* duration_option =
      app.add_option("-d,--duration", duration, "how long to measure, e.g. 10s (default 10s)")
          ->check(check_duration);
  app.add_option("-n,--requests", options.requests, "stop after this many operations")
      ->excludes(duration_option)
      ->check(CLI::Range(std::uint64_t{1}, UINT64_MAX));
  app.add_option("--warmup", warmup, "run this long before measuring")
      ->capture_default_str()
      ->check(check_duration);
  app.add_option("--timeout", timeout, "deadline of one operation")
      ->capture_default_str()
      ->check(check_duration);
  app.add_option("--message", options.message, "what greet sends")->capture_default_str();
  app.add_option("--expect", options.expect, "the reply greet, banner and burst expect")
      ->capture_default_str();
  app.add_option("--size", options.size,
                 "bytes per round trip (echo, default 64) or per write (discard, default 65536)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{64} << 20));
  app.add_flag("--half-close", options.half_close,
               "send FIN after the message (greet) or right after connecting (banner)");
  app.add_option("-t,--threads", options.threads, "client threads, one event loop each")
      ->capture_default_str()
      ->check(CLI::Range(1u, 256u));
  app.add_option("--source-addresses", options.source_addresses,
                 "spread connections over 127.0.0.1..127.0.0.N (more than ~28k connections)")
      ->check(CLI::Range(1u, 254u));
  app.add_option("--connect-rate", options.connect_rate,
                 "hold: connections opened per second, over all threads (0: all at once)")
      ->capture_default_str();
  app.add_option("--server-pid", options.server_pid,
                 "report this process's CPU time per operation (and memory, for hold)")
      ->check(CLI::Range(1, 1 << 30));
  app.add_option("--upstream-pid", options.upstream_pid,
                 "also report this process's CPU time per operation, apart (a proxy's upstream)")
      ->check(CLI::Range(1, 1 << 30));
  app.add_option("--backend", backend, "the client's event loop: auto, io_uring or epoll")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "io_uring", "epoll"}));
  app.add_flag("--json", options.json, "print the result as JSON on stdout");
  std::string tls_version;
  add_tls_options(app, options, tls_version);

  try {
    app.parse(argc, argv);
    std::string_view why;
    auto address = SocketAddress::try_parse(target, &why);
    if (!address) throw CLI::ValidationError("--target", fmt::format("'{}': {}", target, why));
    options.target = *address;
    if (options.source_addresses > 0 && !options.target.is_v4()) {
      throw CLI::ValidationError("--source-addresses", "needs an IPv4 --target");
    }
    check_tls_options(options, workload);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    std::exit(0);
  } catch (const CLI::ParseError& error) {
    std::fprintf(stderr, "salam-bench: %s\n", error.what());
    std::exit(2);
  }
  options.workload = parse_workload(workload);
  if (!duration.empty()) options.duration = parse_duration(duration);
  options.warmup = parse_duration(warmup);
  options.timeout = parse_duration(timeout);
  options.backend = parse_backend_kind(backend);
  options.progress = ::isatty(STDERR_FILENO) == 1;
  if (!tls_version.empty()) {
    options.tls_version = tls_version == "1.2" ? tls::Version::tls1_2 : tls::Version::tls1_3;
  }
  return options;
}

}  // namespace salam::bench
